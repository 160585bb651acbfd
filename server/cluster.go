package server

import (
	"context"
	"fmt"
	"time"

	"gatehouse/server/admin"
	"gatehouse/server/cluster"
	"gatehouse/server/keys"
	"gatehouse/server/quota"
	"gatehouse/store"
	"gatehouse/views"
)

// Roles of a node (contract section 11).
const (
	RoleStandalone = "standalone"
	RoleLeader     = "leader"
	RoleWorker     = "worker"
)

// ClusterConfig is what a leader or a worker needs besides Config.
type ClusterConfig struct {
	Redis    string // redis:// or unix:// URL
	Leader   string // a worker's leader: its admin listener URL
	LeaderCA string // PEM file for an https leader
	Token    string // the cluster token
	NodeName string
	// For tests: the quota clock instead of Redis's TIME, and the bound
	// on one Redis call.
	RedisClock   func() time.Time
	RedisTimeout time.Duration
}

func (s *Server) role() string {
	if s.cfg.Role == "" {
		return RoleStandalone
	}
	return s.cfg.Role
}

// newQuotas picks the quota counters of the node's role: in memory and
// SQLite standalone, Redis in a cluster.
func (s *Server) newQuotas() error {
	if s.role() == RoleStandalone {
		s.manager = quota.NewManager(s.cfg.Location, s.cfg.Now)
		s.quotas = s.manager
		return nil
	}
	c := s.cfg.Cluster
	q, err := cluster.NewQuotas(cluster.QuotaConfig{
		Redis:      c.Redis,
		Node:       c.NodeName,
		Leader:     s.role() == RoleLeader,
		Location:   s.cfg.Location,
		Now:        s.cfg.Now,
		Clock:      c.RedisClock,
		Timeout:    c.RedisTimeout,
		Registerer: s.metrics.registry,
		Logger:     s.log,
	})
	if err != nil {
		return fmt.Errorf("redis (--redis): %w", err)
	}
	s.cq = q
	s.quotas = q
	return nil
}

// setupCluster wires the leader's routes or the worker's replica.
func (s *Server) setupCluster() error {
	switch s.role() {
	case RoleLeader:
		s.leader = cluster.NewLeader(cluster.LeaderConfig{
			Store:        s.store,
			Token:        s.cfg.Cluster.Token,
			Revision:     s.Revision,
			WaitRevision: s.waitRevision,
			Self:         func() cluster.Node { return s.self(cluster.Connected) },
			Now:          s.cfg.Now,
			Logger:       s.log,
		})
	case RoleWorker:
		r, err := cluster.NewReplica(cluster.ReplicaConfig{
			Leader:     s.cfg.Cluster.Leader,
			LeaderCA:   s.cfg.Cluster.LeaderCA,
			Token:      s.cfg.Cluster.Token,
			Store:      s.store,
			Report:     func() cluster.Node { return s.self("") },
			Prebuild:   s.prebuild,
			Registerer: s.metrics.registry,
			Logger:     s.log,
		})
		if err != nil {
			return fmt.Errorf("leader (--leader): %w", err)
		}
		s.replica = r
	}
	return nil
}

// self is this node as the cluster lists it.
func (s *Server) self(leader string) cluster.Node {
	redis := cluster.Unreachable
	if s.cq != nil && s.cq.Up() {
		redis = cluster.Connected
	}
	if leader == "" {
		leader = cluster.Unreachable
		if s.replica != nil && s.replica.Connected() {
			leader = cluster.Connected
		}
	}
	addr, _ := s.proxyURL.Load().(string)
	return cluster.Node{Name: s.cfg.Cluster.NodeName, Role: s.role(), Address: addr,
		Revision: s.Revision(), Leader: leader, Redis: redis}
}

// waitRevision returns a channel closed once the gateway serves a revision
// after after.
func (s *Server) waitRevision(after int64) <-chan struct{} {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	if s.Revision() > after {
		done := make(chan struct{})
		close(done)
		return done
	}
	return s.revCh
}

// revisionApplied wakes the long polls; the follower calls it on install.
func (s *Server) revisionApplied() {
	s.revMu.Lock()
	close(s.revCh)
	s.revCh = make(chan struct{})
	s.revMu.Unlock()
}

// health is what /health and /ready answer.
func (s *Server) health() (string, int64, bool) {
	ready := true
	if s.replica != nil {
		ready = s.replica.Ready()
	}
	return s.role(), s.Revision(), ready
}

func (s *Server) links() (string, string) {
	n := s.self("")
	return n.Leader, n.Redis
}

func (s *Server) dashboardNodes() []views.ClusterNode {
	ns := s.leader.Nodes()
	out := make([]views.ClusterNode, len(ns))
	for i, n := range ns {
		out[i] = views.ClusterNode(n)
	}
	return out
}

func (s *Server) clusterNodes() []admin.ClusterNode {
	ns := s.leader.Nodes()
	out := make([]admin.ClusterNode, len(ns))
	for i, n := range ns {
		out[i] = admin.ClusterNode(n)
	}
	return out
}

// flushUsage moves the calls every node reported to Redis into the
// leader's usage history in SQLite.
func (s *Server) flushUsage(ctx context.Context) error {
	cs, err := s.cq.DrainUsage(ctx)
	if err != nil || len(cs) == 0 {
		return err
	}
	if err := s.store.AddCounters(ctx, cs); err != nil {
		s.cq.RestoreUsage(ctx, cs)
		return err
	}
	return nil
}

// closeQuotas gives back a cluster node's reservations (bounded) and
// closes its Redis client.
func (s *Server) closeQuotas() {
	if s.cq == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cq.Close(ctx); err != nil {
		s.log.Warn("close redis", "err", err)
	}
}

// releaseQuotas gives back a cluster node's reservations, bounded.
func (s *Server) releaseQuotas() {
	if s.cq == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.cq.Release(ctx)
}

// prebuilt is a snapshot's keys put into a Sibling of the key index on
// their own goroutine while the store writes them. When the snapshot
// commits, the follower swaps it in whole, instead of reading a million
// keys back and putting them one by one (follow.go): the two took a
// fifth of a snapshot's load.
type prebuilt struct {
	rev  int64
	ix   *keys.Index
	err  error
	done chan struct{} // closed once every key handed over is in ix
}

// prebuild starts indexing the keys of the snapshot at rev.
func (s *Server) prebuild(rev int64) chan<- *store.ReplicaKey {
	ch := make(chan *store.ReplicaKey, 4096)
	p := &prebuilt{rev: rev, ix: s.keys.Sibling(), done: make(chan struct{})}
	s.pre.Store(p)
	go func() {
		defer close(p.done)
		auth := store.AuthKeys()
		for k := range ch {
			if p.err != nil {
				continue // drain: the sender never blocks on a failed build
			}
			a, err := auth(k)
			if err != nil {
				p.err = err
				continue
			}
			p.ix.PutAPIKey(&a)
		}
	}()
	return ch
}

// takePrebuilt returns the index built for the snapshot at rev when it
// holds the n keys the snapshot wrote; nil otherwise, and the follower
// reads the keys from its view.
func (s *Server) takePrebuilt(rev int64, n int) *keys.Index {
	p := s.pre.Swap(nil)
	if p == nil || p.rev != rev {
		return nil
	}
	<-p.done
	if p.err != nil || p.ix.Len() != n {
		s.log.Warn("the snapshot's key index was not built: reading the keys back", "revision", rev, "err", p.err)
		return nil
	}
	return p.ix
}
