package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"gatehouse"
	"gatehouse/store"
)

// Apply is the store's, with plugin modules checked as CheckWasm checks an upload.
func (b *testBackend) Apply(ctx context.Context, doc *gatehouse.Document, dryRun, prune bool) (gatehouse.ApplyResult, error) {
	return b.Store.Apply(ctx, doc, store.ApplyOptions{DryRun: dryRun, Prune: prune,
		CheckPlugin: func(ctx context.Context, _ gatehouse.Plugin, wasm []byte) error { return b.CheckWasm(ctx, wasm) }})
}

// seedAPI gives a an admin group and key (which export leaves out) and a
// configuration of every kind of entity.
func seedAPI(a *testAPI) {
	a.t.Helper()
	ctx := context.Background()
	if err := a.b.CreateGroup(ctx, &gatehouse.Group{ID: gatehouse.AdminGroupID, Name: "Admin API"}); err != nil {
		a.t.Fatal(err)
	}
	admin := gatehouse.DefaultAPIKey()
	admin.ClientID, admin.AuthorizedEntities = "admin1", []string{gatehouse.GroupEntity(gatehouse.AdminGroupID)}
	if err := a.b.CreateAPIKey(ctx, &admin); err != nil {
		a.t.Fatal(err)
	}
	a.mustGroup("shop")
	a.mustGroup("old")
	p := a.mustPlugin("stamp")
	a.mustService("orders", "shop")
	a.expect(a.do("PATCH", "/api/services/orders", "", `{"plugins":[{"ref":"`+p.ID+`","config":"c"}]}`), http.StatusOK)
	a.mustKey("/api/groups/shop/apikeys", `{"clientId":"k1","clientSecret":"s3cr3t-k1","metadata":{"team":"a"}}`)
}

func applyDoc(a *testAPI, query, ct, doc string) response {
	a.t.Helper()
	return a.do("POST", "/api/apply"+query, ct, doc)
}

func TestExportApplyAPI(t *testing.T) {
	src := newTestAPI(t)
	seedAPI(src)

	y := src.do("GET", "/api/export", "", "")
	if y.status != http.StatusOK || y.header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("export: %d %q %s", y.status, y.header.Get("Content-Type"), y.body)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(y.body, &doc); err != nil {
		t.Fatalf("export is not YAML: %v\n%s", err, y.body)
	}
	if doc["format"] != "gatehouse/v1" || len(doc["groups"].([]any)) != 2 || len(doc["apikeys"].([]any)) != 1 ||
		len(doc["services"].([]any)) != 1 || len(doc["plugins"].([]any)) != 1 {
		t.Fatalf("export = %s", y.body)
	}
	if strings.Contains(string(y.body), "admin") {
		t.Fatalf("export holds the admin group or key:\n%s", y.body)
	}
	if !strings.Contains(string(y.body), "s3cr3t-k1") || !strings.Contains(string(y.body), "wasm: AGFzbQEAAAA=") {
		t.Fatalf("export lacks the secret or the module:\n%s", y.body)
	}
	j := src.expect(src.do("GET", "/api/export?format=json", "", ""), http.StatusOK)
	jy, err := yaml.YAMLToJSON(y.body)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, j.body, jy) {
		t.Fatalf("JSON and YAML exports differ:\n%s\n%s", j.body, jy)
	}
	noSecrets := src.expect(src.do("GET", "/api/export?format=json&secrets=false", "", ""), http.StatusOK)
	if strings.Contains(string(noSecrets.body), "clientSecret") || !strings.Contains(string(noSecrets.body), `"clientId":"k1"`) {
		t.Fatalf("secrets=false export: %s", noSecrets.body)
	}
	src.expectInvalid(src.do("GET", "/api/export?format=xml", "", ""), "format")
	src.expectInvalid(src.do("GET", "/api/export?secrets=nah", "", ""), "secrets")

	// Apply to an empty gateway, export again: the same document.
	dst := newTestAPI(t)
	res := dst.expect(applyDoc(dst, "", "application/yaml", string(y.body)), http.StatusOK)
	got := decode[gatehouse.ApplyResult](t, res)
	if len(got.Created) != 5 || len(got.Updated) != 0 || len(got.Deleted) != 0 || got.Revision != 1 ||
		res.header.Get("Gatehouse-Revision") != "1" {
		t.Fatalf("apply to empty: %s (revision header %q)", res.body, res.header.Get("Gatehouse-Revision"))
	}
	if !strings.Contains(string(res.body), `"service/orders"`) {
		t.Fatalf("entries are not kind/id: %s", res.body)
	}
	y2 := dst.do("GET", "/api/export", "", "")
	if string(y2.body) != string(y.body) {
		t.Fatalf("export after apply differs:\n%s\nwant\n%s", y2.body, y.body)
	}

	// Again, as JSON: three empty lists and no revision (the answer carries
	// the current one, as every write that changes nothing does).
	res = dst.expect(applyDoc(dst, "?prune=true", "application/json", string(j.body)), http.StatusOK)
	if string(res.body) != `{"created":[],"updated":[],"deleted":[],"revision":1}`+"\n" || res.header.Get("Gatehouse-Revision") != "1" {
		t.Fatalf("second apply: %s, revision header %q", res.body, res.header.Get("Gatehouse-Revision"))
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

func TestApplyAPIPlanDryRunPrune(t *testing.T) {
	a := newTestAPI(t)
	seedAPI(a)
	doc := `format: gatehouse/v1
# order does not matter: the key names a group created below it
apikeys:
  - clientId: k2
    clientSecret: fresh-secret
    authorizedEntities: [group_new]
  - clientId: k1
    authorizedEntities: [group_shop]
    metadata: {team: b}
groups:
  - {id: new, name: New}
  - {id: shop, name: group shop}
services:
  - id: orders
    groupId: shop
    name: svc orders
    domain: orders.example.com
    targets: [{host: "127.0.0.1:9999"}]
`
	before := a.b.Revision
	rev0, _ := before(context.Background())
	dry := a.expect(applyDoc(a, "?dryRun=true&prune=true", "application/yaml", doc), http.StatusOK)
	want := `{"created":["group/new","apikey/k2"],"updated":["service/orders","apikey/k1"],"deleted":["plugin/` +
		pluginID(a) + `","group/old"],"revision":` + itoa(rev0) + `}` + "\n"
	if string(dry.body) != want || dry.header.Get("Gatehouse-Revision") != "" {
		t.Fatalf("dry run: %s, want %s", dry.body, want)
	}
	a.expect(a.do("GET", "/api/groups/old", "", ""), http.StatusOK)
	if rev, _ := before(context.Background()); rev != rev0 {
		t.Fatalf("dry run made revision %d", rev)
	}

	res := a.expect(applyDoc(a, "?prune=true", "application/yaml", doc), http.StatusOK)
	want = strings.Replace(want, `"revision":`+itoa(rev0), `"revision":`+itoa(rev0+1), 1)
	if string(res.body) != want || res.header.Get("Gatehouse-Revision") != itoa(rev0+1) {
		t.Fatalf("apply: %s, want %s", res.body, want)
	}
	k1 := decode[gatehouse.APIKey](t, a.expect(a.do("GET", "/api/apikeys/k1", "", ""), http.StatusOK))
	if k1.ClientSecret != "s3cr3t-k1" || k1.Metadata["team"] != "b" {
		t.Fatalf("k1 = %+v: want its secret kept and team b", k1)
	}
	k2 := decode[gatehouse.APIKey](t, a.expect(a.do("GET", "/api/apikeys/k2", "", ""), http.StatusOK))
	if k2.ClientSecret != "fresh-secret" {
		t.Fatalf("k2 = %+v", k2)
	}
	a.expect(a.do("GET", "/api/groups/old", "", ""), http.StatusNotFound)
	// Prune never deletes the admin group or an admin key.
	if _, err := a.b.GetAPIKey(context.Background(), "admin1"); err != nil {
		t.Fatalf("admin key pruned: %v", err)
	}
	if _, err := a.b.GetGroup(context.Background(), gatehouse.AdminGroupID); err != nil {
		t.Fatalf("admin group pruned: %v", err)
	}
}

func pluginID(a *testAPI) string {
	a.t.Helper()
	ps := decode[[]gatehouse.Plugin](a.t, a.expect(a.do("GET", "/api/plugins", "", ""), http.StatusOK))
	return ps[0].ID
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestApplyAPIInvalid(t *testing.T) {
	a := newTestAPI(t)
	seedAPI(a)
	cases := []struct {
		name, doc, query, field, entity string
	}{
		{"typo in a key", "format: gatehouse/v1\napikeys:\n  - clientId: k9\n    dailyQuta: 5\n", "", "apikeys[0].dailyQuta", "apikey/k9"},
		{"unknown top field", "format: gatehouse/v1\nroutes: []\n", "", "routes", ""},
		{"wrong format", "format: gatehouse/v2\n", "", "format", ""},
		{"service without target", "format: gatehouse/v1\nservices:\n  - {id: s1, groupId: shop, name: S, domain: s.example.com, targets: [{host: ''}]}\n",
			"", "services[0].targets", "service/s1"},
		{"type error", `{"format":"gatehouse/v1","groups":[{"id":"g","name":7}]}`, "", "groups[0].name", "group/g"},
		{"bad base64", "format: gatehouse/v1\nplugins:\n  - {id: p9, name: P, wasm: '%%%'}\n", "", "plugins[0].wasm", "plugin/p9"},
		{"not a plugin", "format: gatehouse/v1\nplugins:\n  - {id: p9, name: P, wasm: aGVsbG8=}\n", "", "plugins[0].wasm", "plugin/p9"},
		{"dangling entity", "format: gatehouse/v1\napikeys:\n  - {clientId: k9, authorizedEntities: [group_nope]}\n", "",
			"apikeys[0].authorizedEntities", "apikey/k9"},
		{"malformed yaml", "format: [\n", "", "", ""},
		{"bad dryRun", "format: gatehouse/v1\n", "?dryRun=maybe", "dryRun", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a.t = t
			before, _ := a.b.Export(context.Background())
			rev, _ := a.b.Revision(context.Background())
			r := applyDoc(a, c.query, "application/yaml", c.doc)
			a.expectInvalid(r, c.field)
			if msg := decode[map[string]any](t, r)["error"].(string); !strings.Contains(msg, c.entity) {
				t.Fatalf("error %q does not name %s", msg, c.entity)
			}
			after, _ := a.b.Export(context.Background())
			if r2, _ := a.b.Revision(context.Background()); r2 != rev || !jsonEqualV(t, before, after) {
				t.Fatalf("an invalid document wrote")
			}
		})
	}
}

func jsonEqualV(t *testing.T, a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return jsonEqual(t, ja, jb)
}

func TestApplyReadOnly(t *testing.T) {
	a := newTestAPI(t)
	req, _ := http.NewRequest("POST", a.srv.URL+"/api/apply", strings.NewReader("format: gatehouse/v1\n"))
	req.Header.Set(authHeader, readOnlyValue)
	res, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("read-only apply: %d", res.StatusCode)
	}
}
