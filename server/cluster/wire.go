package cluster

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gatehouse"
	"gatehouse/store"
)

// The replication wire format, which both /api/cluster/snapshot and
// /api/cluster/changes answer: the magic "GHR1", then records, each a kind
// byte, a uvarint length and that many bytes:
//   - 'H' head: a uvarint, the snapshot's revision or the leader's head;
//   - 'R' a revision (store.ReplicaRevision as JSON), changes only;
//   - 'E' an entity that is not a key, or any entity that is gone
//     (store.ReplicaEntity as JSON);
//   - 'K' an API key (store.ReplicaKey in binary, below);
//   - 'Z' end: a uvarint, the number of 'R', 'E' and 'K' records before it.
//
// A stream without its end was cut short and is discarded whole. Keys are
// binary because a snapshot carries a million of them: encoding/json took
// most of the time a worker needed to load one.
const (
	wireMagic       = "GHR1"
	wireContentType = "application/vnd.gatehouse.replica"

	recHead     byte = 'H'
	recRevision byte = 'R'
	recEntity   byte = 'E'
	recKey      byte = 'K'
	recEnd      byte = 'Z'

	// maxRecord bounds one record: a plugin of 32 MiB in base64, with room.
	maxRecord = 64 << 20
)

// wireWriter writes the records of one answer.
type wireWriter struct {
	w     *bufio.Writer
	buf   []byte
	count uint64
}

func newWireWriter(w io.Writer) (*wireWriter, error) {
	ww := &wireWriter{w: bufio.NewWriterSize(w, 64<<10)}
	_, err := ww.w.WriteString(wireMagic)
	return ww, err
}

func (w *wireWriter) record(kind byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := w.w.Write(hdr[:1+n]); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

func (w *wireWriter) head(rev int64) error {
	return w.record(recHead, binary.AppendUvarint(w.buf[:0], uint64(rev)))
}

func (w *wireWriter) revision(r *store.ReplicaRevision) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	w.count++
	return w.record(recRevision, b)
}

func (w *wireWriter) entity(e *store.ReplicaEntity) error {
	w.count++
	if e.Key != nil {
		w.buf = appendKey(w.buf[:0], e.Key)
		return w.record(recKey, w.buf)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return w.record(recEntity, b)
}

// end writes the end record and flushes.
func (w *wireWriter) end() error {
	if err := w.record(recEnd, binary.AppendUvarint(w.buf[:0], w.count)); err != nil {
		return err
	}
	return w.w.Flush()
}

// record is one decoded record: kind says which field is set.
type record struct {
	kind     byte
	n        int64 // head: the revision; end: the count
	revision *store.ReplicaRevision
	entity   *store.ReplicaEntity
}

// wireReader reads the records of one answer, checking their framing and
// the end's count.
type wireReader struct {
	r     *bufio.Reader
	buf   []byte
	count uint64
	ended bool
}

var errWire = errors.New("replication stream")

func newWireReader(r io.Reader) (*wireReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var magic [len(wireMagic)]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", errWire, err)
	}
	if string(magic[:]) != wireMagic {
		return nil, fmt.Errorf("%w: does not start with %s", errWire, wireMagic)
	}
	return &wireReader{r: br}, nil
}

// next decodes the next record; at the end record (its count checked) it
// answers io.EOF, and a stream that stops before its end is
// io.ErrUnexpectedEOF.
func (r *wireReader) next() (record, error) {
	if r.ended {
		return record{}, io.EOF
	}
	kind, err := r.r.ReadByte()
	if err != nil {
		return record{}, r.cut(err)
	}
	size, err := binary.ReadUvarint(r.r)
	if err != nil {
		return record{}, r.cut(err)
	}
	if size > maxRecord {
		return record{}, fmt.Errorf("%w: a record of %d bytes", errWire, size)
	}
	if uint64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	b := r.buf[:size]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return record{}, r.cut(err)
	}
	rec := record{kind: kind}
	switch kind {
	case recHead, recEnd:
		v, n := binary.Uvarint(b)
		if n <= 0 || n != len(b) || v > 1<<62 {
			return record{}, fmt.Errorf("%w: a bad %q record", errWire, kind)
		}
		rec.n = int64(v)
		if kind == recEnd {
			if v != r.count {
				return record{}, fmt.Errorf("%w: ends after %d records, says %d", errWire, r.count, v)
			}
			r.ended = true
			return record{}, io.EOF
		}
	case recRevision:
		rec.revision = &store.ReplicaRevision{}
		if err := json.Unmarshal(b, rec.revision); err != nil {
			return record{}, fmt.Errorf("%w: revision: %v", errWire, err)
		}
	case recEntity:
		rec.entity = &store.ReplicaEntity{}
		if err := json.Unmarshal(b, rec.entity); err != nil {
			return record{}, fmt.Errorf("%w: entity: %v", errWire, err)
		}
	case recKey:
		k, err := decodeKey(b)
		if err != nil {
			return record{}, err
		}
		rec.entity = &store.ReplicaEntity{Kind: gatehouse.KindAPIKey, ID: k.ClientID, Key: k}
	default:
		return record{}, fmt.Errorf("%w: unknown record %q", errWire, kind)
	}
	if kind == recRevision || kind == recEntity || kind == recKey {
		r.count++
	}
	return rec, nil
}

func (r *wireReader) cut(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %w", errWire, err)
}

// A key in binary: its eight strings (ClientID, Secret, Name, Description,
// Entities, Metadata, Tags, PreviousSecret), each a uvarint length and its
// bytes; a flags byte; the varints Throttling, Daily, Monthly,
// RotationEvery, RotationGrace; then ValidUntil, PreviousUntil and
// RotatedAt, each only when its flag says it is set.
const (
	flagEnabled byte = 1 << iota
	flagClientIDOnly
	flagReadOnly
	flagRotation
	flagValidUntil
	flagPreviousUntil
	flagRotatedAt
	flagsKnown = flagRotatedAt<<1 - 1
)

func appendKey(b []byte, k *store.ReplicaKey) []byte {
	for _, s := range [...]string{k.ClientID, k.Secret, k.Name, k.Description, k.Entities, k.Metadata, k.Tags, k.PreviousSecret} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	var flags byte
	for _, f := range [...]struct {
		on   bool
		flag byte
	}{{k.Enabled, flagEnabled}, {k.ClientIDOnly, flagClientIDOnly}, {k.ReadOnly, flagReadOnly},
		{k.RotationEnabled, flagRotation}, {k.ValidUntil != nil, flagValidUntil},
		{k.PreviousUntil != nil, flagPreviousUntil}, {k.RotatedAt != nil, flagRotatedAt}} {
		if f.on {
			flags |= f.flag
		}
	}
	b = append(b, flags)
	for _, v := range [...]int64{k.Throttling, k.Daily, k.Monthly, k.RotationEvery, k.RotationGrace} {
		b = binary.AppendVarint(b, v)
	}
	for _, v := range [...]*int64{k.ValidUntil, k.PreviousUntil, k.RotatedAt} {
		if v != nil {
			b = binary.AppendVarint(b, *v)
		}
	}
	return b
}

// decodeKey reads a key written by appendKey. Its strings share one copy
// of b: a key costs three allocations, not eleven.
func decodeKey(b []byte) (*store.ReplicaKey, error) {
	bad := func(what string) (*store.ReplicaKey, error) {
		return nil, fmt.Errorf("%w: a key record with a bad %s", errWire, what)
	}
	all := string(b)
	k := &store.ReplicaKey{}
	i := 0
	for _, dst := range [...]*string{&k.ClientID, &k.Secret, &k.Name, &k.Description, &k.Entities, &k.Metadata, &k.Tags, &k.PreviousSecret} {
		n, w := binary.Uvarint(b[i:])
		if w <= 0 || n > uint64(len(b)-i-w) {
			return bad("string")
		}
		i += w
		*dst = all[i : i+int(n)]
		i += int(n)
	}
	if k.ClientID == "" {
		return bad("client id")
	}
	if i >= len(b) || b[i]&^flagsKnown != 0 {
		return bad("flags")
	}
	flags := b[i]
	i++
	k.Enabled, k.ClientIDOnly, k.ReadOnly = flags&flagEnabled != 0, flags&flagClientIDOnly != 0, flags&flagReadOnly != 0
	k.RotationEnabled = flags&flagRotation != 0
	ints := []*int64{&k.Throttling, &k.Daily, &k.Monthly, &k.RotationEvery, &k.RotationGrace}
	opt := [...]struct {
		flag byte
		dst  **int64
	}{{flagValidUntil, &k.ValidUntil}, {flagPreviousUntil, &k.PreviousUntil}, {flagRotatedAt, &k.RotatedAt}}
	var times [3]int64
	for j, o := range opt {
		if flags&o.flag != 0 {
			*o.dst = &times[j]
			ints = append(ints, &times[j])
		}
	}
	for _, dst := range ints {
		v, w := binary.Varint(b[i:])
		if w <= 0 {
			return bad("number")
		}
		*dst = v
		i += w
	}
	if i != len(b) {
		return bad("length")
	}
	return k, nil
}
