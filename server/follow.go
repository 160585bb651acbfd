package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"gatehouse"
	"gatehouse/plugins"
	"gatehouse/server/auth"
	"gatehouse/server/keys"
	"gatehouse/server/route"
	"gatehouse/store"
)

// The server is the store's Follower: the gateway's in-memory state (key
// index, routing table, plugin pools, quota counters) changes only by
// applying the change log in revision order. A change names an entity; the
// state applied is the entity as the store has it then, so a change applied
// late can never undo a newer one.
var _ store.Follower = (*follower)(nil)

type follower struct {
	s   *Server
	rev atomic.Int64 // the last revision applied
}

func (f *follower) Revision() int64 { return f.rev.Load() }

// Prepare reads what the changes need and readies the new routing table and
// plugin chains, so that a write whose effect the gateway cannot serve is
// refused before it commits; install then swaps it all in.
func (f *follower) Prepare(ctx context.Context, v *store.View, cs []gatehouse.Change) (func(), error) {
	if len(cs) == 0 {
		return func() {}, nil
	}
	s := f.s
	type keyChange struct {
		key   *gatehouse.APIKey // nil: the key is gone
		reset bool
	}
	var fresh *keys.Index       // a cluster snapshot: every key, as it is now,
	var reload []*keys.Key      // (read back when it was not prebuilt)
	var previous *auth.Previous // and every previous secret
	keys := map[string]*keyChange{}
	catalog := false
	for _, c := range cs {
		switch c.Kind {
		case store.KindSnapshot:
			catalog = true
			n, err := v.APIKeyCount(ctx)
			if err != nil {
				return nil, err
			}
			if fresh = s.takePrebuilt(c.Revision, n); fresh == nil {
				if reload, err = allKeys(ctx, v); err != nil {
					return nil, err
				}
			}
			previous = auth.NewPrevious()
			if err := v.ScanPreviousSecrets(ctx, s.cfg.Now().UnixMilli(), previous.Set); err != nil {
				return nil, err
			}
		case gatehouse.KindAPIKey:
			kc := keys[c.ID]
			if kc == nil {
				kc = &keyChange{}
				keys[c.ID] = kc
			}
			kc.reset = kc.reset || c.Op == gatehouse.OpResetQuotas
		case gatehouse.KindGroup, gatehouse.KindService, gatehouse.KindPlugin:
			catalog = true
		}
	}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	// A key the view does not have is gone: its change keeps a nil key.
	if err := v.APIKeys(ctx, ids, func(k *gatehouse.APIKey) error {
		keys[k.ClientID].key = k
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read api keys: %w", err)
	}
	var swap func()
	if catalog {
		var err error
		if swap, err = s.prepareCatalog(ctx, v); err != nil {
			return nil, err
		}
	}
	last := cs[len(cs)-1].Revision
	return func() {
		if fresh != nil {
			s.keys.Replace(fresh)
		}
		for _, k := range reload {
			s.keys.Put(k)
		}
		if previous != nil {
			s.previous.Replace(previous)
		}
		for id, kc := range keys {
			if kc.key == nil {
				s.keys.Delete(id)
				s.previous.Delete(id)
				s.quotas.Forget(id)
				continue
			}
			s.keys.PutAPIKey(kc.key)
			if old, until, ok := kc.key.PreviousSecretAt(s.cfg.Now().UnixMilli()); ok {
				s.previous.Set(id, old, until)
			} else {
				s.previous.Delete(id)
			}
			if kc.reset {
				s.quotas.Reset(id)
			}
		}
		if swap != nil {
			swap()
		}
		f.rev.Store(last)
		s.metrics.revision.Set(float64(last))
		s.revisionApplied()
	}, nil
}

// allKeys reads every key, for a snapshot that replaced them all.
func allKeys(ctx context.Context, v *store.View) ([]*keys.Key, error) {
	ks := []*keys.Key{}
	err := v.ScanKeyAuth(ctx, func(k *gatehouse.APIKey) error {
		ks = append(ks, keys.FromAPIKey(k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reload api keys: %w", err)
	}
	return ks, nil
}

// Abandoned is called when a write failed to commit after Prepare: the plugin
// host may hold modules that Prepare loaded for it, so the catalog is built
// again from what is committed.
func (f *follower) Abandoned(ctx context.Context) {
	f.s.loaded = map[string]string{} // reload every plugin: the host may run one never committed
	if err := f.s.loadCatalog(ctx); err != nil {
		f.s.log.Error("rebuild the routing table after a failed commit", "err", err)
	}
}

// loadCatalog builds and installs the routing table from the committed state.
func (s *Server) loadCatalog(ctx context.Context) error {
	return s.store.Read(ctx, func(v *store.View) error {
		swap, err := s.prepareCatalog(ctx, v)
		if err != nil {
			return err
		}
		swap()
		return nil
	})
}

// prepareCatalog loads the plugins whose bytes or limits changed and builds
// the routing table with every service's plugin chain, from what v sees. A
// service the table cannot hold, or a plugin that does not load, is an error:
// the write that caused it is refused. The returned swap installs the table.
func (s *Server) prepareCatalog(ctx context.Context, v *store.View) (func(), error) {
	ps, err := v.ListPlugins(ctx)
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	present := map[string]bool{}
	loaded := map[string]string{}
	for _, p := range ps {
		present[p.ID] = true
		ver := pluginVersion(p)
		loaded[p.ID] = ver
		if s.loaded[p.ID] == ver {
			continue
		}
		wasm, err := v.PluginWasm(ctx, p.ID)
		if err != nil {
			return nil, fmt.Errorf("read plugin %s: %w", p.ID, err)
		}
		if err := s.plugins.Load(ctx, p, wasm); err != nil {
			return nil, fmt.Errorf("load plugin %s: %w", p.ID, err)
		}
	}
	services, err := v.AllServices(ctx)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var buildErr error
	t := route.Build(services, s.routes.Load(), func(id string, err error) {
		if buildErr == nil {
			buildErr = fmt.Errorf("service %s cannot be routed: %w", id, err)
		}
	})
	if buildErr != nil {
		return nil, buildErr
	}
	chains := map[string]*plugins.Chain{}
	for _, rt := range t.Routes {
		if len(rt.Service.Plugins) == 0 {
			continue
		}
		c, err := s.plugins.Chain(rt.Service.ID, rt.Service.Plugins)
		if err != nil {
			return nil, fmt.Errorf("plugin chain of service %s: %w", rt.Service.ID, err)
		}
		chains[rt.Service.ID] = c
	}
	return func() {
		for _, rt := range t.Routes {
			rt.Handler = s.gateway.newForwarder(rt.Service.ID, chains[rt.Service.ID])
		}
		s.routes.Store(t)
		for id := range s.loaded {
			if !present[id] {
				s.plugins.Remove(context.Background(), id)
			}
		}
		s.loaded = loaded
		// Services gone, disabled or without plugins now: free their idle instances.
		for id := range s.chained {
			if chains[id] == nil {
				s.plugins.Forget(id)
			}
		}
		s.chained = map[string]bool{}
		for id := range chains {
			s.chained[id] = true
		}
	}, nil
}

// followLoop applies what other processes (the command line, another
// gateway on the same file) commit, within the contract's 1 s.
func (s *Server) followLoop(ctx context.Context) {
	t := time.NewTicker(followInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.store.Follow(ctx)
			switch {
			case err != nil && !failing && ctx.Err() == nil:
				s.log.Error("follow the change log", "err", err)
				failing = true
			case err == nil && failing:
				s.log.Info("following the change log again")
				failing = false
			}
		}
	}
}

// followInterval bounds how late a write made by another process on the
// database file reaches the gateway.
const followInterval = 200 * time.Millisecond
