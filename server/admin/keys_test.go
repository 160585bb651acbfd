package admin

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gatehouse"
)

func TestKeyCreateDefaults(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")

	k := a.mustKey("/api/groups/g/apikeys", `{"clientName":"mobile"}`)
	if len(k.ClientID) != 16 || strings.Trim(k.ClientID, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Errorf("generated clientId %q", k.ClientID)
	}
	if len(k.ClientSecret) != 64 {
		t.Errorf("generated clientSecret %q", k.ClientSecret)
	}
	want := gatehouse.DefaultAPIKey()
	want.ClientID, want.ClientSecret, want.ClientName = k.ClientID, k.ClientSecret, "mobile"
	want.AuthorizedEntities = []string{"group_g"}
	if !reflect.DeepEqual(k, want) {
		t.Errorf("created\n %+v\nwant\n %+v", k, want)
	}
	if got := decode[gatehouse.APIKey](t, a.expect(a.do("GET", "/api/apikeys/"+k.ClientID, "", ""), 200)); !reflect.DeepEqual(got, want) {
		t.Errorf("stored %+v", got)
	}

	a.expect(a.do("POST", "/api/groups/g/apikeys", "", `{"clientId":"`+k.ClientID+`"}`), http.StatusConflict)
	for _, tc := range []struct{ body, field string }{
		{`{"dailyQuota":-1}`, "dailyQuota"},
		{`{"throttlingQuota":-5}`, "throttlingQuota"},
		{`{"monthlyQuota":"lots"}`, "monthlyQuota"},
		{`{"validUntil":1.5}`, "validUntil"},
		{`{"metadata":{"a":1}}`, "metadata"},
		{`{"authorizedEntities":["everything"]}`, "authorizedEntities"},
		{`{"authorizedGroup":{}}`, "authorizedGroup"},
		{`{"clientId":"bad id"}`, "clientId"},
		{`{"clientName":"x"`, ""},
		{`"key"`, ""},
	} {
		a.expectInvalid(a.do("POST", "/api/groups/g/apikeys", "", tc.body), tc.field)
	}
	if r := a.do("GET", "/api/apikeys", "", ""); r.header.Get("X-Total-Count") != "1" {
		t.Errorf("invalid creates wrote keys: %s", r.body)
	}
}

func TestKeyPutDefaultsAndKeptSecret(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	k := a.mustKey("/api/groups/g/apikeys", `{"clientId":"k1","clientName":"n","dailyQuota":5,"readOnly":true,"tags":["a"],"metadata":{"m":"v"}}`)

	// Absent fields take their defaults and the secret is kept; the body may
	// repeat the path's client id.
	got := decode[gatehouse.APIKey](t, a.expect(a.do("PUT", "/api/groups/g/apikeys/k1", "", `{"clientId":"k1","clientName":"renamed"}`), 200))
	want := gatehouse.DefaultAPIKey()
	want.ClientID, want.ClientSecret, want.ClientName = "k1", k.ClientSecret, "renamed"
	want.AuthorizedEntities = []string{"group_g"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("put\n %+v\nwant\n %+v", got, want)
	}
	if stored := decode[gatehouse.APIKey](t, a.do("GET", "/api/apikeys/k1", "", "")); !reflect.DeepEqual(stored, want) {
		t.Errorf("stored %+v", stored)
	}
	a.expect(a.do("GET", "/api/apikeys/other", "", ""), http.StatusNotFound)

	// A given secret replaces the old one.
	got = decode[gatehouse.APIKey](t, a.expect(a.do("PUT", "/api/apikeys/k1", "", `{"clientSecret":"new-secret","authorizedEntities":["group_g"]}`), 200))
	if got.ClientSecret != "new-secret" {
		t.Errorf("secret %q", got.ClientSecret)
	}
	a.expectInvalid(a.do("PUT", "/api/apikeys/k1", "", `{"dailyQuota":-1}`), "dailyQuota")
	a.expect(a.do("PUT", "/api/apikeys/missing", "", `{}`), http.StatusNotFound)
}

func TestScopedKeyRoutes(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g1")
	a.mustGroup("g2")
	a.mustService("s1", "g1")
	a.mustService("s2", "g1")

	for _, tc := range []struct {
		path, body string
		entities   []string
	}{
		{"/api/groups/g1/apikeys", `{"clientId":"ong1"}`, []string{"group_g1"}},
		{"/api/services/s1/apikeys", `{"clientId":"vias1"}`, []string{"group_g1"}},
		{"/api/groups/g1/apikeys", `{"clientId":"ons1","authorizedEntities":["service_s1"]}`, []string{"service_s1"}},
		{"/api/groups/g1/apikeys", `{"clientId":"ong2","authorizedGroup":"g2"}`, []string{"group_g2"}},
		{"/api/services/s1/apikeys", `{"clientId":"both","authorizedEntities":["service_s2"],"authorizedGroup":"g2"}`, []string{"service_s2", "group_g2"}},
	} {
		if k := a.mustKey(tc.path, tc.body); !reflect.DeepEqual(k.AuthorizedEntities, tc.entities) {
			t.Errorf("%s %s: entities %v, want %v", tc.path, tc.body, k.AuthorizedEntities, tc.entities)
		}
	}
	a.expect(a.do("POST", "/api/groups/missing/apikeys", "", `{}`), http.StatusNotFound)
	a.expect(a.do("POST", "/api/services/missing/apikeys", "", `{}`), http.StatusNotFound)

	// Lists reach only the keys authorized on the group or service.
	for path, want := range map[string][]string{
		"/api/groups/g1/apikeys":   {"ong1", "vias1"},
		"/api/groups/g2/apikeys":   {"ong2", "both"},
		"/api/services/s1/apikeys": {"ong1", "vias1", "ons1"},
		"/api/services/s2/apikeys": {"ong1", "vias1", "both"},
	} {
		r := a.expect(a.do("GET", path, "", ""), 200)
		if got := clientIDs(decode[[]gatehouse.APIKey](t, r)); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
		if r.header.Get("X-Total-Count") != fmt.Sprint(len(want)) {
			t.Errorf("%s: X-Total-Count %q", path, r.header.Get("X-Total-Count"))
		}
	}

	// Single-key routes: outside the scope is 404, and nothing is changed.
	for _, tc := range []struct {
		scope, clientID string
		reach           bool
	}{
		{"/api/groups/g1", "ong1", true},
		{"/api/groups/g1", "ons1", false},
		{"/api/groups/g2", "ong1", false},
		{"/api/services/s1", "ons1", true},
		{"/api/services/s2", "ons1", false},
		{"/api/services/s2", "both", true},
		{"/api/groups/g1", "nobody", false},
	} {
		path := tc.scope + "/apikeys/" + tc.clientID
		status := http.StatusNotFound
		if tc.reach {
			status = http.StatusOK
		}
		a.expect(a.do("GET", path, "", ""), status)
		if tc.reach {
			a.expect(a.do("PATCH", path, "", `{"clientName":"patched"}`), status)
			continue
		}
		a.expect(a.do("PATCH", path, "", `{"clientName":"leak"}`), status)
		a.expect(a.do("PUT", path, "", `{"clientName":"leak","authorizedEntities":["group_g2"]}`), status)
		a.expect(a.do("DELETE", path, "", ""), status)
		if tc.clientID != "nobody" {
			k := decode[gatehouse.APIKey](t, a.expect(a.do("GET", "/api/apikeys/"+tc.clientID, "", ""), http.StatusOK))
			if k.ClientName == "leak" {
				t.Errorf("%s: out-of-scope write landed: %+v", path, k)
			}
		}
	}

	// A PUT under a group without entities keeps the key on that group.
	k := decode[gatehouse.APIKey](t, a.expect(a.do("PUT", "/api/groups/g1/apikeys/ong1", "", `{"clientName":"x"}`), 200))
	if !reflect.DeepEqual(k.AuthorizedEntities, []string{"group_g1"}) {
		t.Errorf("scoped put entities %v", k.AuthorizedEntities)
	}
	a.expectDeleted(a.do("DELETE", "/api/services/s1/apikeys/ong1", "", ""))
	a.expect(a.do("GET", "/api/apikeys/ong1", "", ""), http.StatusNotFound)
}

func clientIDs(ks []gatehouse.APIKey) []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ClientID
	}
	return ids
}

func TestKeyListPagingAndFilters(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustGroup("h")
	a.mustService("s", "h")
	var bulk []string
	for i := range 7 {
		bulk = append(bulk, fmt.Sprintf(`{"clientId":"k%d","clientName":"key %d","authorizedGroup":"g","enabled":%t}`, i, i, i%2 == 0))
	}
	bulk = append(bulk, `{"clientId":"onh","clientName":"Special","authorizedGroup":"h"}`,
		`{"clientId":"ons","clientName":"other","authorizedEntities":["service_s"]}`)
	a.expect(a.do("POST", "/api/apikeys/_bulk", "", "["+strings.Join(bulk, ",")+"]"), http.StatusCreated)

	for _, tc := range []struct {
		query string
		want  []string
		total string
	}{
		{"", []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "onh", "ons"}, "9"},
		{"?pageSize=3", []string{"k0", "k1", "k2"}, "9"},
		{"?pageSize=3&page=2", []string{"k3", "k4", "k5"}, "9"},
		{"?pageSize=4&page=3", []string{"ons"}, "9"},
		{"?pageSize=4&page=9", []string{}, "9"},
		{"?pageSize=1000", []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "onh", "ons"}, "9"},
		{"?group=g", []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6"}, "7"},
		{"?group=g&enabled=false", []string{"k1", "k3", "k5"}, "3"},
		{"?group=g&enabled=true&pageSize=2&page=2", []string{"k4", "k6"}, "4"},
		{"?service=s", []string{"onh", "ons"}, "2"},
		{"?q=SPECIAL", []string{"onh"}, "1"},
		{"?q=k1", []string{"k1"}, "1"},
		{"?group=nobody", []string{}, "0"},
	} {
		r := a.expect(a.do("GET", "/api/apikeys"+tc.query, "", ""), 200)
		if got := clientIDs(decode[[]gatehouse.APIKey](t, r)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
		if got := r.header.Get("X-Total-Count"); got != tc.total {
			t.Errorf("%s: X-Total-Count %q, want %s", tc.query, got, tc.total)
		}
	}

	for _, tc := range []struct{ query, field string }{
		{"?pageSize=1001", "pageSize"},
		{"?pageSize=abc", "pageSize"},
		{"?pageSize=0", "pageSize"},
		{"?page=0", "page"},
		{"?page=-1", "page"},
		{"?page=x", "page"},
		{"?page=99999999999999999999", "page"},
		{"?enabled=maybe", "enabled"},
	} {
		a.expectInvalid(a.do("GET", "/api/apikeys"+tc.query, "", ""), tc.field)
	}
	// Every list pages the same way.
	for _, path := range []string{"/api/groups", "/api/services", "/api/plugins", "/api/groups/g/services", "/api/groups/g/apikeys", "/api/services/s/apikeys"} {
		a.expectInvalid(a.do("GET", path+"?pageSize=1001", "", ""), "pageSize")
	}
	r := a.expect(a.do("GET", "/api/groups?pageSize=1", "", ""), 200)
	if got := decode[[]gatehouse.Group](t, r); len(got) != 1 || got[0].ID != "g" || r.header.Get("X-Total-Count") != "2" {
		t.Errorf("group page %s %v", r.body, r.header)
	}
}

func TestBulk(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")

	ks := decode[[]gatehouse.APIKey](t, a.expect(a.do("POST", "/api/apikeys/_bulk", "",
		`[{"clientName":"a","authorizedGroup":"g"},{"clientId":"b","dailyQuota":3}]`), http.StatusCreated))
	if len(ks) != 2 || len(ks[0].ClientID) != 16 || len(ks[0].ClientSecret) != 64 || ks[1].ClientID != "b" ||
		ks[1].DailyQuota != 3 || ks[1].MonthlyQuota != gatehouse.DefaultQuota || !slices.Equal(ks[0].AuthorizedEntities, []string{"group_g"}) {
		t.Errorf("bulk created %+v", ks)
	}
	a.expect(a.do("POST", "/api/apikeys/_bulk", "", `[]`), http.StatusCreated)

	// All or nothing: one bad key and none is written.
	for _, tc := range []struct {
		body   string
		status int
		field  string
	}{
		{`[{"clientId":"c1"},{"clientId":"c1"}]`, http.StatusConflict, ""},
		{`[{"clientId":"c1"},{"clientId":"b"}]`, http.StatusConflict, ""},
		{`[{"clientId":"c1"},{"clientId":"c2"},{"clientId":"c3","dailyQuota":-1}]`, http.StatusBadRequest, "[2].dailyQuota"},
		{`[{"clientId":"c1"},{"dailyQuota":"x"}]`, http.StatusBadRequest, "[1].dailyQuota"},
		{`[{"clientId":"c1"},null]`, http.StatusBadRequest, "[1]"},
		{`{"clientId":"c1"}`, http.StatusBadRequest, ""},
		{`null`, http.StatusBadRequest, ""},
		{`[{"clientId":"c1"}`, http.StatusBadRequest, ""},
	} {
		r := a.expect(a.do("POST", "/api/apikeys/_bulk", "", tc.body), tc.status)
		if tc.status == http.StatusBadRequest {
			a.expectInvalid(r, tc.field)
		}
	}
	if r := a.do("GET", "/api/apikeys", "", ""); r.header.Get("X-Total-Count") != "2" {
		t.Errorf("failed bulk calls wrote keys: %s", r.body)
	}

	// At most 10,000 keys per call.
	many := "[" + strings.TrimSuffix(strings.Repeat("{},", gatehouse.MaxBulkKeys+1), ",") + "]"
	a.expectInvalid(a.do("POST", "/api/apikeys/_bulk", "", many), "")
	if r := a.do("GET", "/api/apikeys", "", ""); r.header.Get("X-Total-Count") != "2" {
		t.Errorf("oversized bulk wrote keys")
	}
}

func TestBulkTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 keys")
	}
	t.Parallel()
	a := newTestAPI(t)
	many := "[" + strings.TrimSuffix(strings.Repeat(`{"clientName":"fleet"},`, gatehouse.MaxBulkKeys), ",") + "]"
	ks := decode[[]gatehouse.APIKey](t, a.expect(a.do("POST", "/api/apikeys/_bulk", "", many), http.StatusCreated))
	if len(ks) != gatehouse.MaxBulkKeys {
		t.Fatalf("created %d keys", len(ks))
	}
	if r := a.do("GET", "/api/apikeys?pageSize=1", "", ""); r.header.Get("X-Total-Count") != fmt.Sprint(gatehouse.MaxBulkKeys) {
		t.Errorf("X-Total-Count %q", r.header.Get("X-Total-Count"))
	}
}

func TestQuotas(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","dailyQuota":100}`)
	a.b.mu.Lock()
	a.b.daily["k"] = 42
	a.b.mu.Unlock()

	u := decode[gatehouse.QuotaUsage](t, a.expect(a.do("GET", "/api/apikeys/k/quotas", "", ""), 200))
	if u.AuthorizedCallsPerDay != 100 || u.CurrentCallsPerDay != 42 || u.RemainingCallsPerDay != 58 {
		t.Errorf("usage %+v", u)
	}
	a.expectDeleted(a.do("DELETE", "/api/apikeys/k/quotas", "", ""))
	u = decode[gatehouse.QuotaUsage](t, a.expect(a.do("GET", "/api/apikeys/k/quotas", "", ""), 200))
	if u.CurrentCallsPerDay != 0 || u.RemainingCallsPerDay != 100 {
		t.Errorf("usage after reset %+v", u)
	}
	a.expect(a.do("GET", "/api/apikeys/missing/quotas", "", ""), http.StatusNotFound)
	a.expect(a.do("DELETE", "/api/apikeys/missing/quotas", "", ""), http.StatusNotFound)
}
