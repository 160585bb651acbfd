package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gatehouse"
)

// Export returns the whole configuration in creation order, from one
// snapshot: every group but admin-api-group, every service, every key but
// the admin API keys, and every plugin with its module.
func (s *Store) Export(ctx context.Context) (gatehouse.Document, error) {
	doc := gatehouse.Document{Format: gatehouse.DocumentFormat}
	err := s.read(ctx, func(tx *sql.Tx) error {
		st, err := loadState(ctx, tx, s.box())
		if err != nil {
			return err
		}
		doc.Groups = st.groups
		doc.Services = st.services
		doc.APIKeys = st.keys
		doc.Plugins = make([]gatehouse.PluginDocument, 0, len(st.plugins))
		for _, p := range st.plugins {
			wasm, err := pluginWasm(ctx, tx, p.ID)
			if err != nil {
				return err
			}
			doc.Plugins = append(doc.Plugins, gatehouse.PluginDocument{ID: p.ID, Name: p.Name, SHA256: p.SHA256,
				MemoryLimitPages: p.MemoryLimitPages, TimeoutMs: p.TimeoutMs, PoolSize: p.PoolSize, Wasm: wasm})
		}
		return nil
	})
	if err != nil {
		return gatehouse.Document{}, err
	}
	return doc, nil
}

// ApplyOptions are the switches of an apply.
type ApplyOptions struct {
	// DryRun computes the plan, with every check, and writes nothing.
	DryRun bool
	// Prune deletes what the document lacks (never admin-api-group or an
	// admin API key).
	Prune bool
	// CheckPlugin, when set, checks a created or changed plugin's module
	// under its limits, as an upload is checked; its error refuses the apply.
	CheckPlugin func(ctx context.Context, p gatehouse.Plugin, wasm []byte) error
}

// errDryRun rolls a dry run's transaction back once its plan is made.
var errDryRun = errors.New("dry run")

// Apply makes the configuration equal to doc in one transaction, so one
// revision: entities doc lacks are created, those that differ updated, and
// with Prune those absent from doc deleted. Order inside doc does not
// matter. A key without clientSecret keeps its secret (a new one gets a
// generated one). Any error writes nothing; an invalid document is Invalid
// naming the entity ("service/orders: ...") and its field
// ("services[0].targets"). Applying a document equal to the configuration
// changes nothing and makes no revision.
func (s *Store) Apply(ctx context.Context, doc *gatehouse.Document, opt ApplyOptions) (gatehouse.ApplyResult, error) {
	res := gatehouse.ApplyResult{Created: []string{}, Updated: []string{}, Deleted: []string{}}
	if err := checkDocument(doc, opt.Prune); err != nil {
		return res, err
	}
	wctx, rec := gatehouse.WithRevisionRecorder(ctx)
	err := s.write(wctx, func(tx *txn) error {
		if err := applyDocument(ctx, tx, doc, opt, &res); err != nil {
			return err
		}
		if opt.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return gatehouse.ApplyResult{}, err
	}
	if res.Revision = rec.Revision(); res.Revision > 0 {
		gatehouse.RecordRevision(ctx, res.Revision)
	} else if res.Revision, err = s.Revision(ctx); err != nil {
		return gatehouse.ApplyResult{}, err
	}
	return res, nil
}

// entityErr names the document entity an error is about: an Invalid one
// gets the entity's place as its field prefix ("services[2].groupId") and
// "kind/id: " before its message; a Conflict or NotFound the same message
// prefix. Internal errors pass unchanged.
func entityErr(err error, list string, i int, kind, id string) error {
	ge := gatehouse.AsError(err)
	if ge == nil || ge.Kind == gatehouse.KindInternal || ge.Kind == gatehouse.KindStorageFull {
		return err
	}
	field := ""
	if ge.Kind == gatehouse.KindInvalid {
		field = fmt.Sprintf("%s[%d]", list, i)
		if ge.Field != "" {
			field += "." + ge.Field
		}
	}
	name := kind + "/" + id
	if id == "" {
		name = fmt.Sprintf("%s[%d]", list, i)
	}
	return gatehouse.Errorf(ge.Kind, field, "%s: %s", name, ge.Message)
}

// checkDocument checks what needs no database: the format, each entity on
// its own, ids given and unique. With prune, every reference must name an
// entity of the document, since everything else is about to be deleted.
func checkDocument(doc *gatehouse.Document, prune bool) error {
	if doc.Format != gatehouse.DocumentFormat {
		return gatehouse.Invalid("format", "must be %q", gatehouse.DocumentFormat)
	}
	groups := map[string]bool{}
	for i := range doc.Groups {
		g := &doc.Groups[i]
		err := func() error {
			if g.ID == gatehouse.AdminGroupID {
				return gatehouse.Invalid("id", "%q is built in: leave it out of the document", g.ID)
			}
			if err := matchID(groups, "id", g.ID); err != nil {
				return err
			}
			return g.Validate()
		}()
		if err != nil {
			return entityErr(err, "groups", i, gatehouse.KindGroup, g.ID)
		}
	}
	plugins := map[string]bool{}
	for i := range doc.Plugins {
		p := &doc.Plugins[i]
		err := func() error {
			if err := matchID(plugins, "id", p.ID); err != nil {
				return err
			}
			meta := p.Plugin()
			if err := meta.Validate(); err != nil {
				return err
			}
			if len(p.Wasm) == 0 {
				if p.SHA256 == "" {
					return gatehouse.Invalid("wasm", "must hold the module (base64), or sha256 name the one the gateway has")
				}
				return nil
			}
			if err := checkWasm(p.Wasm); err != nil {
				return err
			}
			if sum := wasmSum(p.Wasm); p.SHA256 != "" && p.SHA256 != sum {
				return gatehouse.Invalid("sha256", "is not the SHA-256 of wasm (%s)", sum)
			}
			return nil
		}()
		if err != nil {
			return entityErr(err, "plugins", i, gatehouse.KindPlugin, p.ID)
		}
	}
	services := map[string]bool{}
	for i := range doc.Services {
		sv := &doc.Services[i]
		err := func() error {
			if err := matchID(services, "id", sv.ID); err != nil {
				return err
			}
			sv.FillDefaults()
			if err := sv.Validate(); err != nil {
				return err
			}
			if sv.GroupID == gatehouse.AdminGroupID {
				return gatehouse.Invalid("groupId", "no service can be placed in the built-in group %q", sv.GroupID)
			}
			if prune && !groups[sv.GroupID] {
				return gatehouse.Invalid("groupId", "group %q is not in the document, and prune would delete it", sv.GroupID)
			}
			for _, ref := range sv.Plugins {
				if prune && !plugins[ref.Ref] {
					return gatehouse.Invalid("plugins", "plugin %q is not in the document, and prune would delete it", ref.Ref)
				}
			}
			return nil
		}()
		if err != nil {
			return entityErr(err, "services", i, gatehouse.KindService, sv.ID)
		}
	}
	keys := map[string]bool{}
	for i := range doc.APIKeys {
		k := &doc.APIKeys[i]
		err := func() error {
			if err := matchID(keys, "clientId", k.ClientID); err != nil {
				return err
			}
			// The secret may be absent (kept, or generated): check the rest.
			probe := *k
			if probe.ClientSecret == "" {
				probe.ClientSecret = "kept"
			}
			probe.FillDefaults()
			if err := probe.Validate(); err != nil {
				return err
			}
			for _, e := range k.AuthorizedEntities {
				if e == gatehouse.GroupEntity(gatehouse.AdminGroupID) {
					return gatehouse.Invalid("authorizedEntities", "admin API keys are not managed by apply: use gatehouse admin new-key")
				}
				if !prune {
					continue
				}
				if g, ok := strings.CutPrefix(e, "group_"); ok && !groups[g] {
					return gatehouse.Invalid("authorizedEntities", "group %q is not in the document, and prune would delete it", g)
				}
				if sv, ok := strings.CutPrefix(e, "service_"); ok && !services[sv] {
					return gatehouse.Invalid("authorizedEntities", "service %q is not in the document, and prune would delete it", sv)
				}
			}
			return nil
		}()
		if err != nil {
			return entityErr(err, "apikeys", i, gatehouse.KindAPIKey, k.ClientID)
		}
	}
	return nil
}

// matchID wants a document entity's id present (an apply matches entities
// by id) and not seen before in its list.
func matchID(seen map[string]bool, field, id string) error {
	if id == "" {
		return gatehouse.Invalid(field, "must not be empty: an apply matches entities by id")
	}
	if seen[id] {
		return gatehouse.Invalid(field, "appears more than once in the document")
	}
	seen[id] = true
	return nil
}

// state is the configuration as apply and export see it, in creation order.
type state struct {
	groups    []gatehouse.Group // without admin-api-group
	services  []gatehouse.Service
	keys      []gatehouse.APIKey // without the admin API keys
	adminKeys map[string]bool
	plugins   []gatehouse.Plugin
}

func isAdminKey(k *gatehouse.APIKey) bool {
	return slices.Contains(k.AuthorizedEntities, gatehouse.GroupEntity(gatehouse.AdminGroupID))
}

func loadState(ctx context.Context, q querier, box *secretBox) (state, error) {
	st := state{groups: []gatehouse.Group{}, keys: []gatehouse.APIKey{}, adminKeys: map[string]bool{}}
	rows, err := q.QueryContext(ctx, "SELECT id, name, description FROM groups WHERE id != ? ORDER BY seq", gatehouse.AdminGroupID)
	if err != nil {
		return st, fmt.Errorf("load groups: %w", err)
	}
	for rows.Next() {
		var g gatehouse.Group
		if err := rows.Scan(&g.ID, &g.Name, &g.Description); err != nil {
			rows.Close()
			return st, fmt.Errorf("load groups: %w", err)
		}
		st.groups = append(st.groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("load groups: %w", err)
	}
	if st.services, err = queryServices(ctx, q, box, "SELECT data FROM services ORDER BY seq"); err != nil {
		return st, err
	}
	rows, err = q.QueryContext(ctx, keySelect+" ORDER BY seq")
	if err != nil {
		return st, fmt.Errorf("load apikeys: %w", err)
	}
	for rows.Next() {
		k, err := scanKey(rows, box)
		if err != nil {
			rows.Close()
			return st, fmt.Errorf("load apikeys: %w", err)
		}
		if isAdminKey(&k) {
			st.adminKeys[k.ClientID] = true
			continue
		}
		st.keys = append(st.keys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("load apikeys: %w", err)
	}
	if st.plugins, err = listPlugins(ctx, q); err != nil {
		return st, err
	}
	return st, nil
}

// byID indexes xs by id.
func byID[T any](xs []T, id func(*T) string) map[string]*T {
	m := make(map[string]*T, len(xs))
	for i := range xs {
		m[id(&xs[i])] = &xs[i]
	}
	return m
}

// sameJSON reports whether a and b encode to the same JSON: the entities'
// own shape is what "differs" means.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// applyDocument makes the plan and carries it out inside tx: plugins and
// groups first (services name them), then services, then keys (which name
// both); with prune the deletes go the other way round.
func applyDocument(ctx context.Context, tx *txn, doc *gatehouse.Document, opt ApplyOptions, res *gatehouse.ApplyResult) error {
	st, err := loadState(ctx, tx, tx.box)
	if err != nil {
		return err
	}
	entry := func(kind, id string) string { return kind + "/" + id }

	curPlugins := byID(st.plugins, func(p *gatehouse.Plugin) string { return p.ID })
	for i := range doc.Plugins {
		d := &doc.Plugins[i]
		if err := applyPlugin(ctx, tx, d, curPlugins[d.ID], opt, res); err != nil {
			return entityErr(err, "plugins", i, gatehouse.KindPlugin, d.ID)
		}
	}

	curGroups := byID(st.groups, func(g *gatehouse.Group) string { return g.ID })
	for i := range doc.Groups {
		g := &doc.Groups[i]
		cur := curGroups[g.ID]
		var err error
		switch {
		case cur == nil:
			if err = insertGroup(ctx, tx, g); err == nil {
				res.Created = append(res.Created, entry(gatehouse.KindGroup, g.ID))
			}
		case *cur != *g:
			if err = updateGroup(ctx, tx, g); err == nil {
				res.Updated = append(res.Updated, entry(gatehouse.KindGroup, g.ID))
			}
		}
		if err != nil {
			return entityErr(err, "groups", i, gatehouse.KindGroup, g.ID)
		}
	}

	curServices := byID(st.services, func(sv *gatehouse.Service) string { return sv.ID })
	for i := range doc.Services {
		sv := &doc.Services[i]
		cur := curServices[sv.ID]
		if cur != nil && sameJSON(cur, sv) {
			continue
		}
		data, err := prepareService(sv, tx.box)
		if err == nil {
			if cur == nil {
				if err = insertService(ctx, tx, sv, data); err == nil {
					res.Created = append(res.Created, entry(gatehouse.KindService, sv.ID))
				}
			} else if err = updateService(ctx, tx, sv, data); err == nil {
				res.Updated = append(res.Updated, entry(gatehouse.KindService, sv.ID))
			}
		}
		if err != nil {
			return entityErr(err, "services", i, gatehouse.KindService, sv.ID)
		}
	}

	curKeys := byID(st.keys, func(k *gatehouse.APIKey) string { return k.ClientID })
	var kw *keyWriter
	defer func() {
		if kw != nil {
			kw.Close()
		}
	}()
	for i := range doc.APIKeys {
		k := &doc.APIKeys[i]
		cur := curKeys[k.ClientID]
		err := func() error {
			if st.adminKeys[k.ClientID] {
				return gatehouse.Invalid("clientId", "is an admin API key: apply does not manage those")
			}
			if k.ClientSecret == "" && cur != nil {
				k.ClientSecret = cur.ClientSecret
			}
			if err := prepareKey(k); err != nil {
				return err
			}
			switch {
			case cur == nil:
				if kw == nil {
					var err error
					if kw, err = newKeyWriter(ctx, tx); err != nil {
						return err
					}
				}
				if err := kw.add(ctx, k, ""); err != nil {
					return err
				}
				res.Created = append(res.Created, entry(gatehouse.KindAPIKey, k.ClientID))
			default:
				// A key differs when the update would change its row.
				if same, err := sameKeyRow(cur, k); err != nil || same {
					return err
				}
				row, err := encodeKey(k, tx.box)
				if err != nil {
					return err
				}
				if err := updateKey(ctx, tx, k, row); err != nil {
					return err
				}
				res.Updated = append(res.Updated, entry(gatehouse.KindAPIKey, k.ClientID))
			}
			return nil
		}()
		if err != nil {
			return entityErr(err, "apikeys", i, gatehouse.KindAPIKey, k.ClientID)
		}
	}

	if !opt.Prune {
		return nil
	}
	inDoc := map[string]bool{}
	for _, g := range doc.Groups {
		inDoc[entry(gatehouse.KindGroup, g.ID)] = true
	}
	for _, sv := range doc.Services {
		inDoc[entry(gatehouse.KindService, sv.ID)] = true
	}
	for _, k := range doc.APIKeys {
		inDoc[entry(gatehouse.KindAPIKey, k.ClientID)] = true
	}
	for _, p := range doc.Plugins {
		inDoc[entry(gatehouse.KindPlugin, p.ID)] = true
	}
	prune := func(kind, id string, del func(context.Context, *txn, string) error) error {
		e := entry(kind, id)
		if inDoc[e] {
			return nil
		}
		if err := del(ctx, tx, id); err != nil {
			if ge := gatehouse.AsError(err); ge != nil && ge.Kind == gatehouse.KindConflict {
				return gatehouse.Conflict("cannot prune %s: %s", e, ge.Message)
			}
			return err
		}
		res.Deleted = append(res.Deleted, e)
		return nil
	}
	for _, k := range st.keys {
		if err := prune(gatehouse.KindAPIKey, k.ClientID, deleteKey); err != nil {
			return err
		}
	}
	for _, sv := range st.services {
		if err := prune(gatehouse.KindService, sv.ID, deleteService); err != nil {
			return err
		}
	}
	for _, p := range st.plugins {
		if err := prune(gatehouse.KindPlugin, p.ID, deletePlugin); err != nil {
			return err
		}
	}
	for _, g := range st.groups {
		if err := prune(gatehouse.KindGroup, g.ID, deleteGroup); err != nil {
			return err
		}
	}
	return nil
}

// applyPlugin creates the document's plugin, or updates its module and
// limits where they differ from cur; every module it writes, or runs under
// new limits, is checked first.
func applyPlugin(ctx context.Context, tx *txn, d *gatehouse.PluginDocument, cur *gatehouse.Plugin, opt ApplyOptions, res *gatehouse.ApplyResult) error {
	p := d.Plugin()
	sum := d.SHA256
	if len(d.Wasm) > 0 {
		sum = wasmSum(d.Wasm)
	}
	check := func(wasm []byte) error {
		if opt.CheckPlugin == nil {
			return nil
		}
		return opt.CheckPlugin(ctx, p, wasm)
	}
	if cur == nil {
		if len(d.Wasm) == 0 {
			return gatehouse.Invalid("wasm", "must hold the module (base64): the gateway has no plugin %q", d.ID)
		}
		if err := check(d.Wasm); err != nil {
			return err
		}
		if err := insertPlugin(ctx, tx, &p, sum, d.Wasm); err != nil {
			return err
		}
		res.Created = append(res.Created, gatehouse.KindPlugin+"/"+d.ID)
		return nil
	}
	newBytes := sum != cur.SHA256
	if newBytes && len(d.Wasm) == 0 {
		return gatehouse.Invalid("sha256", "names a module the gateway does not have for plugin %q: give wasm", d.ID)
	}
	p.SHA256 = cur.SHA256
	newLimits := p != *cur
	if !newBytes && !newLimits {
		return nil
	}
	wasm := d.Wasm
	if !newBytes {
		var err error
		if wasm, err = pluginWasm(ctx, tx, d.ID); err != nil {
			return err
		}
	}
	if err := check(wasm); err != nil {
		return err
	}
	if newBytes {
		if _, err := replacePluginWasm(ctx, tx, d.ID, sum, wasm); err != nil {
			return err
		}
	}
	if newLimits {
		if err := updatePlugin(ctx, tx, &p); err != nil {
			return err
		}
	}
	res.Updated = append(res.Updated, gatehouse.KindPlugin+"/"+d.ID)
	return nil
}
