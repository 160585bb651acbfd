package admin

import (
	"net/http"
	"reflect"
	"testing"

	"gatehouse"
)

// TestStrictInput is the table of every validation rule the admin API
// itself enforces (contract sections 2 and 8): a field the entity does not
// have is a 400 naming it, at any depth and in bulk with its index; ids
// cannot be changed by PUT or PATCH; a PUT may repeat the path's id; a
// PATCH that changes nothing is a 200. Every case either fails or changes
// nothing, so the entities are the same after the table as before it.
func TestStrictInput(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustGroup("h")
	a.mustService("s", "g")
	a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","clientName":"key","dailyQuota":5,"metadata":{"m":"v"},"tags":["t"]}`)
	p := a.mustPlugin("p")
	pp := "/api/plugins/" + p.ID
	snapshot := func() any {
		return []any{
			decode[[]gatehouse.Group](t, a.do("GET", "/api/groups", "", "")),
			decode[[]gatehouse.Service](t, a.do("GET", "/api/services", "", "")),
			decode[[]gatehouse.APIKey](t, a.do("GET", "/api/apikeys", "", "")),
			decode[[]gatehouse.Plugin](t, a.do("GET", "/api/plugins", "", "")),
		}
	}
	before := snapshot()

	const (
		merge = "application/merge-patch+json"
		jp    = "application/json-patch+json"
		svc   = `"groupId":"g","name":"x","domain":"x.example.com","targets":[{"host":"127.0.0.1:1"}]`
	)
	for _, tc := range []struct {
		name, method, path, ct, body string
		field                        string // the 400's field; "" for a 200
	}{
		// Unknown fields on create.
		{"group typo", "POST", "/api/groups", "", `{"name":"x","descrption":"y"}`, "descrption"},
		{"service typo", "POST", "/api/services", "", `{` + svc + `,"maintenanceMod":true}`, "maintenanceMod"},
		{"service target typo", "POST", "/api/services", "", `{"groupId":"g","name":"x","domain":"x.example.com","targets":[{"host":"127.0.0.1:1"},{"host":"127.0.0.1:2","schem":"http"}]}`, "targets.schem"},
		{"service ipFiltering typo", "POST", "/api/services", "", `{` + svc + `,"ipFiltering":{"whitlist":["10.0.0.0/8"]}}`, "ipFiltering.whitlist"},
		{"service plugin typo", "POST", "/api/services", "", `{` + svc + `,"plugins":[{"ref":"` + p.ID + `","failopen":true}]}`, "plugins.failopen"},
		{"key typo", "POST", "/api/groups/g/apikeys", "", `{"dailyQuta":5}`, "dailyQuta"},
		{"key typo under a service", "POST", "/api/services/s/apikeys", "", `{"clientName":"x","monthlyquota":5}`, "monthlyquota"},
		{"names match exactly", "POST", "/api/groups/g/apikeys", "", `{"DailyQuota":5}`, "DailyQuota"},
		{"the first unknown field is named", "POST", "/api/groups/g/apikeys", "", `{"b":1,"a":2}`, "b"},
		{"unknown field with a null value", "POST", "/api/groups", "", `{"name":"x","owner":null}`, "owner"},
		{"a type error beats an unknown field", "POST", "/api/groups/g/apikeys", "", `{"dailyQuota":"x","dailyQuta":5}`, "dailyQuota"},
		{"bulk key typo", "POST", "/api/apikeys/_bulk", "", `[{"clientName":"ok"},{"clientName":"x","dailyQuta":5}]`, "[1].dailyQuta"},
		{"bulk authorizedGroup typo", "POST", "/api/apikeys/_bulk", "", `[{"authorizedGroups":"g"}]`, "[0].authorizedGroups"},

		// Unknown fields on PUT.
		{"group put typo", "PUT", "/api/groups/g", "", `{"name":"x","nam":"y"}`, "nam"},
		{"service put typo", "PUT", "/api/services/s", "", `{` + svc + `,"forceHTTPS":true}`, "forceHTTPS"},
		{"key put typo", "PUT", "/api/apikeys/k", "", `{"clientName":"x","readonly":true}`, "readonly"},

		// Unknown fields on PATCH, merge and JSON Patch alike.
		{"group merge typo", "PATCH", "/api/groups/g", merge, `{"nmae":"x"}`, "nmae"},
		{"service merge typo", "PATCH", "/api/services/s", merge, `{"buildmode":true}`, "buildmode"},
		{"service nested merge typo", "PATCH", "/api/services/s", merge, `{"ipFiltering":{"blaclist":["10.0.0.1"]}}`, "ipFiltering.blaclist"},
		{"key merge typo", "PATCH", "/api/apikeys/k", merge, `{"dailyQuta":1}`, "dailyQuta"},
		{"key scoped merge typo", "PATCH", "/api/groups/g/apikeys/k", merge, `{"tag":["x"]}`, "tag"},
		{"key json patch add typo", "PATCH", "/api/apikeys/k", jp, `[{"op":"add","path":"/dailyQuta","value":1}]`, "dailyQuta"},
		{"key json patch move to typo", "PATCH", "/api/apikeys/k", jp, `[{"op":"move","from":"/dailyQuota","path":"/dailyQuta"}]`, "dailyQuta"},
		{"plugin merge typo", "PATCH", pp, merge, `{"timeout":5}`, "timeout"},
		{"plugin json patch typo", "PATCH", pp, jp, `[{"op":"add","path":"/memoryLimit","value":5}]`, "memoryLimit"},

		// Ids cannot be changed by PUT...
		{"group put other id", "PUT", "/api/groups/g", "", `{"id":"other","name":"x"}`, "id"},
		{"service put other id", "PUT", "/api/services/s", "", `{"id":"other",` + svc + `}`, "id"},
		{"key put other clientId", "PUT", "/api/apikeys/k", "", `{"clientId":"other"}`, "clientId"},
		{"scoped key put other clientId", "PUT", "/api/groups/g/apikeys/k", "", `{"clientId":"other"}`, "clientId"},
		// ...nor by PATCH, set, replaced, moved or removed.
		{"group merge id", "PATCH", "/api/groups/g", merge, `{"id":"other"}`, "id"},
		{"group merge id removed", "PATCH", "/api/groups/g", merge, `{"id":null}`, "id"},
		{"service json patch id", "PATCH", "/api/services/s", jp, `[{"op":"replace","path":"/id","value":"other"}]`, "id"},
		{"service json patch id removed", "PATCH", "/api/services/s", jp, `[{"op":"remove","path":"/id"}]`, "id"},
		{"key merge clientId", "PATCH", "/api/apikeys/k", merge, `{"clientId":"x"}`, "clientId"},
		{"key merge clientId with other changes", "PATCH", "/api/apikeys/k", merge, `{"clientId":"x","clientName":"y"}`, "clientId"},
		{"scoped key json patch clientId", "PATCH", "/api/services/s/apikeys/k", jp, `[{"op":"replace","path":"/clientId","value":"x"}]`, "clientId"},
		{"key json patch clientId moved", "PATCH", "/api/apikeys/k", jp, `[{"op":"move","from":"/clientId","path":"/clientName"}]`, "clientId"},
		{"plugin merge id", "PATCH", pp, merge, `{"id":"other"}`, "id"},
		{"plugin merge sha256", "PATCH", pp, merge, `{"sha256":"00"}`, "sha256"},
		{"plugin json patch abi", "PATCH", pp, jp, `[{"op":"replace","path":"/abi","value":"proxy-wasm"}]`, "abi"},

		// What is accepted and changes nothing: 200.
		{"group put repeating its id", "PUT", "/api/groups/g", "", `{"id":"g","name":"group g"}`, ""},
		{"service put repeating its id", "PUT", "/api/services/s", "", `{"id":"s","groupId":"g","name":"svc s","domain":"s.example.com","targets":[{"host":"127.0.0.1:9999"}]}`, ""},
		{"group empty merge patch", "PATCH", "/api/groups/g", merge, `{}`, ""},
		{"group same values", "PATCH", "/api/groups/g", merge, `{"id":"g","name":"group g"}`, ""},
		{"service empty json patch", "PATCH", "/api/services/s", jp, `[]`, ""},
		{"service json patch test only", "PATCH", "/api/services/s", jp, `[{"op":"test","path":"/id","value":"s"}]`, ""},
		{"key empty merge patch", "PATCH", "/api/apikeys/k", merge, `{}`, ""},
		{"key same clientId", "PATCH", "/api/groups/g/apikeys/k", merge, `{"clientId":"k","dailyQuota":5}`, ""},
		{"key authorizedGroup already held", "PATCH", "/api/apikeys/k", merge, `{"authorizedGroup":"g"}`, ""},
		{"plugin empty merge patch", "PATCH", pp, merge, `{}`, ""},
		{"plugin same id, sha256 and abi", "PATCH", pp, merge, `{"id":"` + p.ID + `","sha256":"` + p.SHA256 + `","abi":"http-wasm"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			r := a.do(tc.method, tc.path, tc.ct, tc.body)
			if tc.field == "" {
				a.expect(r, http.StatusOK)
				return
			}
			a.expectInvalid(r, tc.field)
		})
	}
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Errorf("the table wrote:\n %+v\nwas\n %+v", after, before)
	}

	// Otoroshi's authorizedGroup shorthand is the one extra field a key takes.
	ks := decode[[]gatehouse.APIKey](t, a.expect(a.do("POST", "/api/apikeys/_bulk", "", `[{"clientId":"b1","authorizedGroup":"h"}]`), http.StatusCreated))
	if len(ks) != 1 || !reflect.DeepEqual(ks[0].AuthorizedEntities, []string{"group_h"}) {
		t.Errorf("bulk with authorizedGroup: %+v", ks)
	}
	k := a.mustKey("/api/groups/g/apikeys", `{"clientId":"b2","authorizedGroup":"h"}`)
	if !reflect.DeepEqual(k.AuthorizedEntities, []string{"group_h"}) {
		t.Errorf("create with authorizedGroup: %+v", k)
	}
	k = decode[gatehouse.APIKey](t, a.expect(a.do("PUT", "/api/apikeys/b2", "", `{"clientId":"b2","authorizedGroup":"g"}`), http.StatusOK))
	if !reflect.DeepEqual(k.AuthorizedEntities, []string{"group_g"}) {
		t.Errorf("put with authorizedGroup: %+v", k)
	}
}
