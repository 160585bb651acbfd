package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/store"
)

// ReplicaConfig wires a worker's copy of its leader's configuration.
type ReplicaConfig struct {
	Leader   string // the leader's admin listener URL
	LeaderCA string // PEM file of the CA of an https leader; system roots when empty
	Token    string
	Store    *store.Store
	// Report is what the worker tells the leader about itself on each call.
	Report   func() Node
	PollWait time.Duration // how long the leader holds a long poll; 2s when 0
	// Prebuild, when set, is called at the start of a snapshot with its
	// revision, and handed each of its keys as it is decoded, while the
	// store writes them; the channel is closed at the end of the stream,
	// whole or cut short (the store's answer says which).
	Prebuild   func(rev int64) chan<- *store.ReplicaKey
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Replica keeps a worker's store in step with its leader's change log:
// a snapshot when the store is empty or the leader no longer has the
// changes it needs, then changes since its revision by long poll, each
// batch applied in one transaction with the leader's revision numbers.
type Replica struct {
	cfg       ReplicaConfig
	base      *url.URL
	client    *http.Client
	connected atomic.Bool
	ready     atomic.Bool
	head      atomic.Int64 // the leader's revision at the last answer
	lag       prometheus.GaugeFunc
	log       *slog.Logger
	applied   func(int64)
}

// NewReplica checks the configuration; Run does the work.
func NewReplica(cfg ReplicaConfig) (*Replica, error) {
	u, err := url.Parse(cfg.Leader)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("leader url %q: want http:// or https://", cfg.Leader)
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.LeaderCA != "" {
		pem, err := os.ReadFile(cfg.LeaderCA)
		if err != nil {
			return nil, fmt.Errorf("leader ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("leader ca %s: no PEM certificate in it", cfg.LeaderCA)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	r := &Replica{cfg: cfg, base: u, client: &http.Client{Transport: tr}, log: cfg.Logger}
	rev, err := cfg.Store.Revision(context.Background())
	if err != nil {
		return nil, err
	}
	// A worker restarted on its file serves what it holds at once.
	r.ready.Store(rev > 0)
	r.lag = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_cluster_revision_lag", Help: "Revisions the leader has that this worker has not applied yet.",
	}, func() float64 {
		rev, err := cfg.Store.Revision(context.Background())
		if err != nil {
			return 0
		}
		return float64(max(r.head.Load()-rev, 0))
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.lag); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return r, nil
}

// Connected reports whether the leader answered the last call.
func (r *Replica) Connected() bool { return r.connected.Load() }

// Ready reports whether the worker serves a configuration: its file had
// one at start, or a snapshot or changes have been applied since.
func (r *Replica) Ready() bool { return r.ready.Load() }

// Leader is the leader's URL, for the 421 answers.
func (r *Replica) Leader() string { return r.base.String() }

// Run follows the leader until ctx is done.
func (r *Replica) Run(ctx context.Context) {
	failing := false
	for ctx.Err() == nil {
		err := r.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if failing {
				r.log.Info("leader connected", "leader", r.base.String())
				failing = false
			}
			continue
		}
		r.connected.Store(false)
		if !failing {
			r.log.Error("leader unreachable: serving the configuration this node holds", "leader", r.base.String(), "err", err)
			failing = true
		}
		if !waitCtx(ctx, time.Second) {
			return
		}
	}
}

var errSnapshot = errors.New("the leader asks for a snapshot")

func (r *Replica) step(ctx context.Context) error {
	rev, err := r.cfg.Store.Revision(ctx)
	if err != nil {
		return err
	}
	if rev == 0 {
		return r.snapshot(ctx)
	}
	err = r.poll(ctx, rev)
	if errors.Is(err, errSnapshot) || errors.Is(err, store.ErrNoChanges) {
		r.log.Info("catching up from a snapshot", "revision", rev)
		return r.snapshot(ctx)
	}
	return err
}

func (r *Replica) get(ctx context.Context, path string, q url.Values, timeout time.Duration) (*http.Response, context.CancelFunc, error) {
	u := r.base.JoinPath(path)
	u.RawQuery = q.Encode()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	if r.cfg.Report != nil {
		n := r.cfg.Report()
		req.Header.Set(hdrNodeName, n.Name)
		req.Header.Set(hdrNodeAddress, n.Address)
		req.Header.Set(hdrNodeRevision, strconv.FormatInt(n.Revision, 10))
		req.Header.Set(hdrNodeRedis, n.Redis)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

func (r *Replica) poll(ctx context.Context, rev int64) error {
	q := url.Values{"from": {strconv.FormatInt(rev, 10)}, "wait": {strconv.FormatInt(r.cfg.PollWait.Milliseconds(), 10)}}
	// The leader answers within PollWait; a second more and it is lost
	// (contract: a lost leader is seen within 5 s).
	resp, cancel, err := r.get(ctx, "/api/cluster/changes", q, r.cfg.PollWait+time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusGone:
		r.connected.Store(true)
		return errSnapshot
	default:
		return fmt.Errorf("leader answered %s", resp.Status)
	}
	head, revs, ents, err := readChanges(resp.Body)
	if err != nil {
		return fmt.Errorf("read changes: %w", err)
	}
	r.connected.Store(true)
	r.head.Store(head)
	if len(revs) == 0 {
		return nil
	}
	if err := r.cfg.Store.ApplyReplicated(ctx, revs, ents); err != nil {
		return fmt.Errorf("apply revisions %d to %d: %w", revs[0].Revision, revs[len(revs)-1].Revision, err)
	}
	r.ready.Store(true)
	return nil
}

// readChanges reads a changes answer whole: it is applied only if it ends.
func readChanges(body io.Reader) (head int64, revs []store.ReplicaRevision, ents []store.ReplicaEntity, err error) {
	wr, err := newWireReader(body)
	if err != nil {
		return 0, nil, nil, err
	}
	rec, err := wr.next()
	if err != nil {
		return 0, nil, nil, err
	}
	if rec.kind != recHead {
		return 0, nil, nil, fmt.Errorf("%w: starts with %q, not its head", errWire, rec.kind)
	}
	head = rec.n
	for {
		rec, err := wr.next()
		switch {
		case errors.Is(err, io.EOF):
			return head, revs, ents, nil
		case err != nil:
			return 0, nil, nil, err
		case rec.revision != nil:
			if len(ents) > 0 {
				return 0, nil, nil, fmt.Errorf("%w: a revision after the entities", errWire)
			}
			revs = append(revs, *rec.revision)
		case rec.entity != nil:
			ents = append(ents, *rec.entity)
		case rec.kind == recHead:
			return 0, nil, nil, fmt.Errorf("%w: a second head", errWire)
		}
	}
}

func (r *Replica) snapshot(ctx context.Context) error {
	resp, cancel, err := r.get(ctx, "/api/cluster/snapshot", nil, 10*time.Minute)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %s to a snapshot", resp.Status)
	}
	r.connected.Store(true)
	wr, err := newWireReader(resp.Body)
	if err != nil {
		return err
	}
	first, err := wr.next()
	if err != nil {
		return err
	}
	if first.kind != recHead {
		return fmt.Errorf("%w: a snapshot starts with %q, not its head", errWire, first.kind)
	}
	rev := first.n
	start := time.Now()
	// Records are decoded on their own goroutine while the transaction
	// writes the ones before, in batches so the two meet rarely.
	type batch struct {
		ents []*store.ReplicaEntity
		end  bool
		err  error
	}
	batches := make(chan batch, 16)
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	var pre chan<- *store.ReplicaKey
	if r.cfg.Prebuild != nil {
		pre = r.cfg.Prebuild(rev)
	}
	go func() {
		defer close(batches)
		if pre != nil {
			defer close(pre)
		}
		for {
			b := batch{ents: make([]*store.ReplicaEntity, 0, 256)}
			for len(b.ents) < cap(b.ents) && !b.end && b.err == nil {
				rec, err := wr.next()
				switch {
				case errors.Is(err, io.EOF):
					b.end = true
				case err != nil:
					b.err = err
				case rec.entity != nil:
					b.ents = append(b.ents, rec.entity)
					if pre != nil && rec.entity.Key != nil {
						select {
						case pre <- rec.entity.Key:
						case <-dctx.Done():
							return
						}
					}
				default:
					b.err = fmt.Errorf("%w: a %q record in a snapshot", errWire, rec.kind)
				}
			}
			select {
			case batches <- b:
			case <-dctx.Done():
				return
			}
			if b.err != nil || b.end {
				return
			}
		}
	}()
	n := 0
	ended := false
	var cur batch
	err = r.cfg.Store.ApplySnapshot(ctx, rev, func() (*store.ReplicaEntity, error) {
		for len(cur.ents) == 0 {
			switch {
			case cur.err != nil:
				return nil, cur.err
			case cur.end:
				ended = true
				return nil, nil
			}
			var ok bool
			if cur, ok = <-batches; !ok {
				return nil, errors.New("read snapshot: cut short")
			}
		}
		e := cur.ents[0]
		cur.ents = cur.ents[1:]
		n++
		return e, nil
	})
	if err != nil {
		return err
	}
	if !ended {
		return errors.New("read snapshot: no end")
	}
	r.head.Store(max(r.head.Load(), rev))
	r.ready.Store(true)
	r.log.Info("snapshot applied", "revision", rev, "entities", n, "dur_ms", time.Since(start).Milliseconds())
	return nil
}
