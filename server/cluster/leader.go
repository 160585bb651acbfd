package cluster

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gatehouse/store"
)

// The routes a worker uses on its leader's admin listener, under
// /api/cluster/, guarded by the cluster token alone:
//   - GET /api/cluster/snapshot: the whole configuration at one revision,
//     streamed in the replication wire format (wire.go): its head, every
//     entity, its end;
//   - GET /api/cluster/changes?from=n&wait=ms: the revisions after n with
//     the current state of the entities they name, answered at once when
//     there are some, else when one is committed or wait has passed (long
//     poll), in the same format; 410 when the log does not hold them (take a
//     snapshot).
// Each call tells the leader about the worker (Gatehouse-Node-* headers),
// which is how GET /api/cluster/nodes knows the nodes.

// Header names of a worker's report.
const (
	hdrNodeName     = "Gatehouse-Node-Name"
	hdrNodeAddress  = "Gatehouse-Node-Address"
	hdrNodeRevision = "Gatehouse-Node-Revision"
	hdrNodeRedis    = "Gatehouse-Node-Redis"
	hdrNodeLeader   = "Gatehouse-Node-Leader"
	hdrRevision     = "Gatehouse-Revision"
)

// maxWait bounds a long poll; maxBatch the revisions of one answer.
const (
	maxWait  = 30 * time.Second
	maxBatch = 1000
)

// Node is one node as GET /api/cluster/nodes lists it.
type Node struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Address  string `json:"address"`
	Revision int64  `json:"revision"`
	LastSeen int64  `json:"lastSeen"` // epoch ms
	Leader   string `json:"leader"`
	Redis    string `json:"redis"`
}

// Link states of a node's leader and Redis.
const (
	Connected   = "connected"
	Unreachable = "unreachable"
)

// LeaderConfig wires the leader's cluster routes.
type LeaderConfig struct {
	Store *store.Store
	Token string
	// Revision is the last revision the leader serves; WaitRevision
	// returns a channel closed once it moves past after.
	Revision     func() int64
	WaitRevision func(after int64) <-chan struct{}
	Self         func() Node // the leader's own entry
	Now          func() time.Time
	Logger       *slog.Logger
}

// Leader serves its configuration to workers and keeps the list of nodes.
type Leader struct {
	cfg   LeaderConfig
	mu    sync.Mutex
	nodes map[string]Node
}

// NewLeader returns the leader's side of replication.
func NewLeader(cfg LeaderConfig) *Leader {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Leader{cfg: cfg, nodes: map[string]Node{}}
}

// Handler answers /api/cluster/snapshot and /api/cluster/changes; any
// other path is 404, after the token is checked.
func (l *Leader) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.authorized(r) {
			writeJSONError(w, http.StatusUnauthorized, "the cluster routes take only Authorization: Bearer <cluster token>")
			return
		}
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		l.seen(r)
		switch r.URL.Path {
		case "/api/cluster/snapshot":
			l.snapshot(w, r)
		case "/api/cluster/changes":
			l.changes(w, r)
		default:
			writeJSONError(w, http.StatusNotFound, "not found")
		}
	})
}

func (l *Leader) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && l.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(l.cfg.Token)) == 1
}

// seen records the worker a call comes from.
func (l *Leader) seen(r *http.Request) {
	name := r.Header.Get(hdrNodeName)
	if name == "" {
		return
	}
	rev, _ := strconv.ParseInt(r.Header.Get(hdrNodeRevision), 10, 64)
	n := Node{Name: name, Role: "worker", Address: r.Header.Get(hdrNodeAddress), Revision: rev,
		LastSeen: l.cfg.Now().UnixMilli(), Leader: Connected, Redis: linkState(r.Header.Get(hdrNodeRedis))}
	l.mu.Lock()
	l.nodes[name] = n
	l.mu.Unlock()
}

// NodeDone records that a worker's call ended, so lastSeen is the end of
// its long poll.
func (l *Leader) nodeDone(r *http.Request) {
	name := r.Header.Get(hdrNodeName)
	l.mu.Lock()
	if n, ok := l.nodes[name]; ok {
		n.LastSeen = l.cfg.Now().UnixMilli()
		l.nodes[name] = n
	}
	l.mu.Unlock()
}

func linkState(s string) string {
	if s == Connected {
		return Connected
	}
	return Unreachable
}

// Nodes lists the leader and the workers seen in the last minute, by name.
func (l *Leader) Nodes() []Node {
	cutoff := l.cfg.Now().Add(-time.Minute).UnixMilli()
	out := []Node{}
	if l.cfg.Self != nil {
		self := l.cfg.Self()
		self.LastSeen = l.cfg.Now().UnixMilli()
		out = append(out, self)
	}
	l.mu.Lock()
	for name, n := range l.nodes {
		if n.LastSeen < cutoff {
			delete(l.nodes, name)
			continue
		}
		out = append(out, n)
	}
	l.mu.Unlock()
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].Name < out[1+j].Name })
	return out
}

func (l *Leader) snapshot(w http.ResponseWriter, r *http.Request) {
	var ww *wireWriter
	err := l.cfg.Store.Snapshot(r.Context(), func(rev int64) error {
		w.Header().Set("Content-Type", wireContentType)
		w.Header().Set(hdrRevision, strconv.FormatInt(rev, 10))
		var err error
		if ww, err = newWireWriter(w); err != nil {
			return err
		}
		return ww.head(rev)
	}, func(e *store.ReplicaEntity) error { return ww.entity(e) })
	if err == nil {
		err = ww.end()
	}
	if err != nil {
		if ww == nil {
			writeJSONError(w, http.StatusInternalServerError, "the snapshot could not be read")
		}
		// Cut short: the worker sees no end record and discards it.
		l.cfg.Logger.Error("cluster snapshot", "err", err)
	}
}

func (l *Leader) changes(w http.ResponseWriter, r *http.Request) {
	defer l.nodeDone(r)
	from, err := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	if err != nil || from < 0 {
		writeJSONError(w, http.StatusBadRequest, "from: want a revision")
		return
	}
	wait := time.Duration(0)
	if s := r.URL.Query().Get("wait"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			writeJSONError(w, http.StatusBadRequest, "wait: want milliseconds")
			return
		}
		wait = min(time.Duration(ms)*time.Millisecond, maxWait)
	}
	if l.cfg.Revision() <= from && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-l.cfg.WaitRevision(from):
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	revs, ents, err := l.cfg.Store.ReplicaChanges(r.Context(), from, maxBatch)
	if errors.Is(err, store.ErrNoChanges) {
		writeJSONError(w, http.StatusGone, "the change log does not hold these revisions: take a snapshot")
		return
	}
	if err != nil {
		l.cfg.Logger.Error("cluster changes", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "the changes could not be read")
		return
	}
	head := from
	if len(revs) > 0 {
		head = revs[len(revs)-1].Revision
	}
	if h := l.cfg.Revision(); h > head {
		head = h
	}
	w.Header().Set(hdrRevision, strconv.FormatInt(head, 10))
	w.Header().Set("Content-Type", wireContentType)
	if err := writeChanges(w, head, revs, ents); err != nil {
		l.cfg.Logger.Debug("cluster changes: the worker went away", "err", err)
	}
}

// writeChanges writes a changes answer: head, the revisions, the entities.
func writeChanges(w io.Writer, head int64, revs []store.ReplicaRevision, ents []store.ReplicaEntity) error {
	ww, err := newWireWriter(w)
	if err != nil {
		return err
	}
	if err := ww.head(head); err != nil {
		return err
	}
	for i := range revs {
		if err := ww.revision(&revs[i]); err != nil {
			return err
		}
	}
	for i := range ents {
		if err := ww.entity(&ents[i]); err != nil {
			return err
		}
	}
	return ww.end()
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// waitCtx waits d, or less when ctx is done first (then false).
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
