package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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
	Report     func() Node
	PollWait   time.Duration // how long the leader holds a long poll; 2s when 0
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
	resp, cancel, err := r.get(ctx, "/api/cluster/changes", q, r.cfg.PollWait+3*time.Second)
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
	var body changesBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("read changes: %w", err)
	}
	r.connected.Store(true)
	r.head.Store(body.Head)
	if len(body.Revisions) == 0 {
		return nil
	}
	if err := r.cfg.Store.ApplyReplicated(ctx, body.Revisions, body.Entities); err != nil {
		return fmt.Errorf("apply revisions %d to %d: %w", body.Revisions[0].Revision,
			body.Revisions[len(body.Revisions)-1].Revision, err)
	}
	r.ready.Store(true)
	return nil
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
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	var head struct {
		Revision int64 `json:"revision"`
	}
	if err := dec.Decode(&head); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	start := time.Now()
	// Lines are decoded on their own goroutine while the transaction
	// writes the ones before: decoding and SQLite take as long as each other.
	type item struct {
		e   *store.ReplicaEntity
		end bool
		err error
	}
	items := make(chan item, 4096)
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(items)
		for {
			var line struct {
				store.ReplicaEntity
				End bool `json:"end"`
			}
			it := item{}
			if err := dec.Decode(&line); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF // no end line: cut short
				}
				it.err = fmt.Errorf("read snapshot: %w", err)
			} else if line.End {
				it.end = true
			} else {
				it.e = &line.ReplicaEntity
			}
			select {
			case items <- it:
			case <-dctx.Done():
				return
			}
			if it.err != nil || it.end {
				return
			}
		}
	}()
	n := 0
	ended := false
	err = r.cfg.Store.ApplySnapshot(ctx, head.Revision, func() (*store.ReplicaEntity, error) {
		it, ok := <-items
		switch {
		case !ok:
			return nil, errors.New("read snapshot: cut short")
		case it.err != nil:
			return nil, it.err
		case it.end:
			ended = true
			return nil, nil
		}
		n++
		return it.e, nil
	})
	if err != nil {
		return err
	}
	if !ended {
		return errors.New("read snapshot: no end")
	}
	r.head.Store(max(r.head.Load(), head.Revision))
	r.ready.Store(true)
	r.log.Info("snapshot applied", "revision", head.Revision, "entities", n, "dur_ms", time.Since(start).Milliseconds())
	return nil
}
