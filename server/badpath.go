package server

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
)

// The proxy listener's connections watch the bytes clients send, for two
// things net/http does not do the contract's way:
//
//   - A request line whose path does not decode: net/http refuses it before
//     any handler runs, writing a plain 400 straight to the connection. The
//     contract wants the gateway's own answer there (400 "bad request path"
//     with the Otoroshi-Error headers), so the connection notices such
//     request lines as they are read and swaps the plain answer for ours.
//     Other malformed requests keep net/http's plain answer.
//   - Framing (RFC 9112 section 6.1): net/http serves a request with both
//     Content-Length and Transfer-Encoding by the latter, and one with
//     Transfer-Encoding on HTTP/1.0 by Content-Length, and keeps the
//     connection open, so that what a front proxy framed as one request's
//     body is read here as a second request. The connection follows the
//     framing of every request head it reads; at a head with both headers
//     (or Transfer-Encoding on HTTP/1.0) it hands net/http the bytes before
//     that head's last byte, then a read error. net/http answers its plain 400, which
//     becomes the gateway's 400 "bad request", and closes the connection:
//     nothing after it is read as a request.
var (
	goBadRequest  = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request")
	badPathAnswer = ownAnswer(msgBadPath)
	framingAnswer = ownAnswer(msgBadRequest)

	errBadFraming = errors.New("request framing: both Content-Length and Transfer-Encoding, or Transfer-Encoding on HTTP/1.0")
)

func ownAnswer(msg string) []byte {
	body := `{"Otoroshi-Error":"` + msg + `"}`
	return []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nOtoroshi-Error: true\r\n" +
		"Otoroshi-Error-Msg: " + msg + "\r\nCache-Control: no-store\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// badPathListener wraps the proxy listener's connections (bad paths and framing, above).
type badPathListener struct{ net.Listener }

func (l badPathListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &badPathConn{Conn: c, f: newFraming()}, nil
}

type badPathConn struct {
	net.Conn
	sawBadPath atomic.Bool
	badFraming atomic.Bool // a read error was (or is about to be) handed to net/http
	upgrade    atomic.Bool // hijacked for a protocol switch: no HTTP framing any more
	f          framing
}

// upgraded is called when the gateway hijacks the connection for a 101.
func (c *badPathConn) upgraded() { c.upgrade.Store(true) }

func (c *badPathConn) Read(p []byte) (int, error) {
	if c.badFraming.Load() {
		if len(p) == 1 {
			// net/http's background read while the request before the
			// refused one is served: an error would cancel that request.
			// It gets nothing; the next request's read gets the error.
			return 0, nil
		}
		return 0, errBadFraming
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.upgrade.Load() {
		if keep, ok := c.f.scan(p[:n]); !ok {
			c.badFraming.Store(true)
			if keep == 0 {
				return c.Read(p) // nothing to hand on: answer as a read after the refusal
			}
			return keep, nil // the bytes before the bad head's end; the error comes next
		}
		// Most reads hold no '%' at all: one vectorised scan, nothing more.
		if bytes.IndexByte(p[:n], '%') >= 0 && hasBadRequestLine(p[:n]) {
			c.sawBadPath.Store(true)
		}
	}
	return n, err
}

func (c *badPathConn) Write(p []byte) (int, error) {
	if bytes.Equal(p, goBadRequest) {
		answer := p
		switch {
		case c.badFraming.Load():
			answer = framingAnswer
		case c.sawBadPath.Load():
			answer = badPathAnswer
		}
		if _, err := c.Conn.Write(answer); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// framing follows the request framing of one connection as net/http reads
// it (RFC 9112: a head line by line, then a Content-Length body, or chunks
// and trailers), so that it knows where each request head starts. It keeps
// no bytes: each line is parsed as it streams by. Where net/http would
// refuse what it reads (and close the connection), it stops following.
type framing struct {
	state  uint8
	remain int64 // bytes left of a Content-Length body or of chunk data

	// The current line.
	lineLen int  // bytes so far, without the line end
	cr      bool // the last byte was a '\r' not yet counted in the line
	colon   bool // a header line's ':' was seen
	fold    bool // a header line that starts with whitespace (obs-fold)
	name    [len("transfer-encoding")]byte
	nameLen int // bytes of the header name so far (may exceed len(name))
	spaces  int // request line: spaces so far, up to 2
	val     [16]byte
	valLen  int   // bytes of the value (may exceed len(val)), leading whitespace left out
	valOWS  int   // whitespace bytes at the end of the value so far
	num     int64 // the Content-Length or chunk size being parsed
	digits  int
	numBad  bool
	ext     bool // chunk line: past ';'

	// The current head.
	lines    int   // lines of the head completed
	proto    uint8 // protoUnknown, proto10 or proto11
	cl       int64 // -1: no Content-Length
	clBad    bool  // an unparsable or conflicting Content-Length
	te       int   // Transfer-Encoding lines
	teOther  bool  // a Transfer-Encoding value other than "chunked"
	refused  bool  // something net/http refuses (a header line without ':' ...)
	lastKind uint8 // the previous header line's kind, which an obs-fold continues
	folded   bool  // an obs-fold continued Content-Length or Transfer-Encoding
}

const (
	inHead = iota
	inBody
	inChunkLine
	inChunkData
	inChunkCR
	inChunkLF
	inTrailer
	untracked // net/http refuses what it reads and closes: nothing more to follow
)

const (
	protoUnknown = iota
	proto10
	proto11
)

const (
	hdrOther = iota
	hdrContentLength
	hdrTransferEncoding
)

// maxChunkLine is net/http's limit on a chunk-size line, without its CRLF.
const maxChunkLine = 4096

func newFraming() framing { return framing{cl: -1} }

// scan follows b, the next bytes of the connection. At a head whose
// framing is refused it returns ok=false and keep, how many bytes of b to
// hand on: all before the head's last byte.
func (f *framing) scan(b []byte) (keep int, ok bool) {
	for i := 0; i < len(b); {
		switch f.state {
		case untracked:
			return len(b), true
		case inBody, inChunkData:
			n := min(int64(len(b)-i), f.remain)
			f.remain -= n
			i += int(n)
			if f.remain == 0 {
				if f.state == inBody {
					f.nextHead()
				} else {
					f.state = inChunkCR
				}
			}
		case inChunkCR, inChunkLF:
			c := b[i]
			i++
			switch {
			case f.state == inChunkCR && c == '\r':
				f.state = inChunkLF
			case f.state == inChunkLF && c == '\n':
				f.state = inChunkLine
				f.resetLine()
			default:
				f.state = untracked // malformed chunked body: net/http fails it
			}
		case inChunkLine:
			c := b[i]
			i++
			f.chunkLineByte(c)
		case inHead, inTrailer:
			c := b[i]
			i++
			if c != '\n' {
				if f.cr {
					f.headByte('\r') // a '\r' inside the line
				}
				f.cr = c == '\r'
				if !f.cr {
					f.headByte(c)
				}
				continue
			}
			f.cr = false
			if !f.endHeadLine() {
				// Everything but the head's last byte: net/http waits for
				// it (so a later request has begun, and gets its answer),
				// then reads the error instead.
				return i - 1, false
			}
		}
	}
	return len(b), true
}

func (f *framing) nextHead() {
	f.state = inHead
	f.resetLine()
	f.lines, f.proto, f.cl, f.clBad, f.te, f.teOther = 0, protoUnknown, -1, false, 0, false
	f.refused, f.lastKind, f.folded = false, hdrOther, false
}

func (f *framing) resetLine() {
	f.lineLen, f.cr, f.colon, f.fold, f.nameLen, f.spaces = 0, false, false, false, 0, 0
	f.valLen, f.valOWS, f.num, f.digits, f.numBad, f.ext = 0, 0, 0, 0, false, false
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// headByte takes one byte of a head or trailer line (line ends excluded).
func (f *framing) headByte(c byte) {
	first := f.lineLen == 0
	f.lineLen++
	if f.state == inTrailer {
		return // trailers are read up to their empty line, nothing more
	}
	if f.lines == 0 { // request line: the protocol is what follows the second space
		if f.spaces < 2 && c == ' ' {
			f.spaces++
		} else if f.spaces == 2 {
			f.valByte(c)
		}
		return
	}
	switch {
	case first && isOWS(c):
		f.fold = true
	case f.fold:
	case !f.colon && c == ':':
		f.colon = true
	case !f.colon:
		if f.nameLen < len(f.name) {
			f.name[f.nameLen] = lower(c)
		}
		f.nameLen++
	case f.valLen == 0 && isOWS(c): // leading whitespace of the value
	default:
		f.valByte(c)
		if f.kind() == hdrContentLength && !isOWS(c) {
			// As strconv.ParseUint(v, 10, 63): digits only, at most 2^63-1.
			if d := int64(c - '0'); c < '0' || c > '9' || f.num > (1<<63-1-d)/10 {
				f.numBad = true
			} else {
				f.num = f.num*10 + d
			}
		}
	}
}

// valByte appends c to the value, counting trailing whitespace.
func (f *framing) valByte(c byte) {
	if isOWS(c) {
		f.valOWS++
	} else {
		if f.valOWS > 0 && f.lines > 0 && f.kind() == hdrContentLength {
			f.numBad = true // whitespace inside the number
		}
		f.valOWS = 0
	}
	if f.valLen < len(f.val) {
		f.val[f.valLen] = c
	}
	f.valLen++
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (f *framing) kind() uint8 {
	n := f.name[:min(f.nameLen, len(f.name))]
	switch {
	case f.nameLen == len("content-length") && string(n) == "content-length":
		return hdrContentLength
	case f.nameLen == len("transfer-encoding") && string(n) == "transfer-encoding":
		return hdrTransferEncoding
	}
	return hdrOther
}

// value is the header value, trimmed, when it fits in val.
func (f *framing) value() ([]byte, bool) {
	n := f.valLen - f.valOWS
	return f.val[:min(n, len(f.val))], n <= len(f.val)
}

// endHeadLine ends a head or trailer line; false when the head just ended
// is refused for its framing.
func (f *framing) endHeadLine() bool {
	if f.state == inTrailer {
		if f.lineLen == 0 {
			f.nextHead()
		}
		f.resetLine()
		return true
	}
	defer f.resetLine()
	switch {
	case f.lineLen == 0 && f.lines == 0: // no request line: net/http refuses
		f.state = untracked
		return true
	case f.lineLen == 0: // the head is complete
		return f.endHead()
	case f.lines == 0:
		v, fits := f.value()
		switch {
		case !fits || len(v) != len("HTTP/1.1") || string(v[:len("HTTP/1.")]) != "HTTP/1." || v[7] < '0' || v[7] > '9':
			f.proto = protoUnknown // net/http refuses it, or it is not HTTP/1 (PRI)
		case v[7] == '0':
			f.proto = proto10
		default:
			f.proto = proto11
		}
	case f.fold:
		if f.lines == 1 {
			f.refused = true // a head cannot start with a continuation line
		} else if f.lastKind != hdrOther {
			f.folded = true
		}
	case !f.colon:
		f.refused = true // a header line without ':' is malformed
	default:
		f.lastKind = f.kind()
		switch f.lastKind {
		case hdrContentLength:
			switch {
			case f.numBad, f.valLen-f.valOWS == 0:
				f.clBad = true
			case f.cl >= 0 && f.cl != f.num:
				f.clBad = true
			default:
				f.cl = f.num
			}
		case hdrTransferEncoding:
			f.te++
			if v, fits := f.value(); !fits || !bytes.EqualFold(v, []byte("chunked")) {
				f.teOther = true
			}
		}
	}
	f.lines++
	return true
}

// endHead decides what follows a complete head: false when its framing is
// refused (RFC 9112 section 6.1).
func (f *framing) endHead() bool {
	if f.te > 0 && (f.cl >= 0 || f.clBad || f.proto == proto10) || f.folded {
		return false
	}
	switch {
	case f.proto == protoUnknown || f.refused || f.clBad:
		f.state = untracked
	case f.te > 0:
		if f.te > 1 || f.teOther {
			f.state = untracked // net/http answers 501 and closes
		} else {
			f.state = inChunkLine
		}
	case f.cl > 0:
		f.state = inBody
		f.remain = f.cl
	default:
		f.nextHead()
	}
	return true
}

// chunkLineByte takes one byte of a chunk-size line ("1a;ext\r\n"), as
// net/http's chunked reader parses it.
func (f *framing) chunkLineByte(c byte) {
	if c == '\n' {
		switch {
		case !f.cr, f.lineLen-1 >= maxChunkLine, f.digits == 0, f.numBad:
			f.state = untracked // net/http fails the body
		case f.num == 0:
			f.state = inTrailer
		default:
			f.state = inChunkData
			f.remain = f.num
		}
		f.resetLine()
		return
	}
	if f.cr {
		f.state = untracked // a CR inside a chunk line
		return
	}
	f.lineLen++
	if c == '\r' {
		f.cr = true
		return
	}
	if f.ext || f.lineLen > maxChunkLine {
		return
	}
	switch {
	case c == ';':
		f.ext = true
		if f.valOWS > 0 {
			f.numBad = true
		}
	case isOWS(c):
		f.valOWS++
	case f.valOWS > 0 || f.digits >= 16:
		f.numBad = true
	default:
		d := unhex(c)
		if d < 0 {
			f.numBad = true
			return
		}
		f.num = f.num<<4 | int64(d)
		f.digits++
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// hasBadRequestLine reports whether b holds a request line ("METHOD target
// HTTP/1.x") whose target does not parse as a request URI.
func hasBadRequestLine(b []byte) bool {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 || !isToken(line[:sp]) {
			continue
		}
		rest := line[sp+1:]
		sp2 := bytes.LastIndexByte(rest, ' ')
		if sp2 < 0 || !bytes.HasPrefix(rest[sp2+1:], []byte("HTTP/1.")) {
			continue
		}
		target := rest[:sp2]
		if bytes.IndexByte(target, '%') < 0 {
			continue
		}
		if _, err := url.ParseRequestURI(string(target)); err != nil {
			return true
		}
	}
	return false
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
