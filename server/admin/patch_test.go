package admin

import (
	"net/http"
	"reflect"
	"testing"

	"gatehouse"
)

func TestPatchKey(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustGroup("h")
	base := a.mustKey("/api/groups/g/apikeys", `{"clientId":"k","clientName":"name","description":"desc","dailyQuota":9,"tags":["t1"],"metadata":{"a":"1"}}`)

	for _, tc := range []struct {
		name, ct, body string
		change         func(k *gatehouse.APIKey)
	}{
		{"json patch replace", "application/json-patch+json", `[{"op":"replace","path":"/clientName","value":"renamed"}]`,
			func(k *gatehouse.APIKey) { k.ClientName = "renamed" }},
		{"json patch add", "application/json-patch+json", `[{"op":"add","path":"/metadata/b","value":"2"},{"op":"add","path":"/tags/-","value":"t2"}]`,
			func(k *gatehouse.APIKey) { k.Metadata["b"] = "2"; k.Tags = append(k.Tags, "t2") }},
		{"json patch remove takes the default", "application/json-patch+json", `[{"op":"remove","path":"/dailyQuota"},{"op":"remove","path":"/description"}]`,
			func(k *gatehouse.APIKey) { k.DailyQuota = gatehouse.DefaultQuota; k.Description = "" }},
		{"json patch test then replace", "application/json-patch+json; charset=utf-8", `[{"op":"test","path":"/clientId","value":"k"},{"op":"replace","path":"/enabled","value":false}]`,
			func(k *gatehouse.APIKey) { k.Enabled = false }},
		{"merge patch", "application/merge-patch+json", `{"readOnly":true,"metadata":{"a":null,"c":"3"},"description":null}`,
			func(k *gatehouse.APIKey) {
				k.ReadOnly = true
				k.Metadata = map[string]string{"c": "3"}
				k.Description = ""
			}},
		{"plain json object is a merge patch", "application/json", `{"monthlyQuota":7}`,
			func(k *gatehouse.APIKey) { k.MonthlyQuota = 7 }},
		{"plain json array is a json patch", "application/json", ` [{"op":"replace","path":"/throttlingQuota","value":3}]`,
			func(k *gatehouse.APIKey) { k.ThrottlingQuota = 3 }},
		{"no content type sniffs too", "", `[{"op":"add","path":"/validUntil","value":1700000000000}]`,
			func(k *gatehouse.APIKey) { v := int64(1700000000000); k.ValidUntil = &v }},
		{"authorizedGroup shorthand", "application/merge-patch+json", `{"authorizedGroup":"h"}`,
			func(k *gatehouse.APIKey) { k.AuthorizedEntities = []string{"group_g", "group_h"} }},
		{"a removed secret is kept", "application/merge-patch+json", `{"clientSecret":null}`,
			func(k *gatehouse.APIKey) {}},
		{"the same id changes nothing", "application/merge-patch+json", `{"clientId":"k","clientName":"name"}`,
			func(k *gatehouse.APIKey) {}},
		{"new secret", "application/json-patch+json", `[{"op":"replace","path":"/clientSecret","value":"s3cret"}]`,
			func(k *gatehouse.APIKey) { k.ClientSecret = "s3cret" }},
		{"empty json patch", "application/json-patch+json", `[]`, func(k *gatehouse.APIKey) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			// Start every case from the same key.
			reset := base
			a.expect(a.do("PUT", "/api/apikeys/k", "", string(mustJSON(t, reset))), 200)
			want := decode[gatehouse.APIKey](t, a.do("GET", "/api/apikeys/k", "", ""))
			tc.change(&want)
			got := decode[gatehouse.APIKey](t, a.expect(a.do("PATCH", "/api/groups/g/apikeys/k", tc.ct, tc.body), 200))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("answered\n %+v\nwant\n %+v", got, want)
			}
			if stored := decode[gatehouse.APIKey](t, a.do("GET", "/api/apikeys/k", "", "")); !reflect.DeepEqual(stored, want) {
				t.Errorf("stored\n %+v\nwant\n %+v", stored, want)
			}
		})
	}
}

func TestPatchErrors(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustService("s", "g")
	before := decode[gatehouse.Service](t, a.do("GET", "/api/services/s", "", ""))

	for _, tc := range []struct {
		name, ct, body, field string
	}{
		{"syntax", "application/json", `{"name":`, ""},
		{"empty", "application/json", ``, ""},
		{"json patch that is an object", "application/json-patch+json", `{"name":"x"}`, ""},
		{"unknown op", "application/json-patch+json", `[{"op":"frobnicate","path":"/name"}]`, ""},
		{"missing path", "application/json-patch+json", `[{"op":"remove","path":"/nope/deeper"}]`, ""},
		{"failed test", "application/json-patch+json", `[{"op":"test","path":"/name","value":"other"},{"op":"replace","path":"/name","value":"x"}]`, ""},
		{"bad index", "application/json-patch+json", `[{"op":"add","path":"/targets/7","value":{"host":"h"}}]`, ""},
		{"merge patch that is an array", "application/merge-patch+json", `[1,2]`, ""},
		{"merge patch that is a string", "application/merge-patch+json", `"x"`, ""},
		{"merge patch null", "application/merge-patch+json", `null`, ""},
		{"wrong type", "application/merge-patch+json", `{"maintenanceMode":"yes"}`, "maintenanceMode"},
		{"invalid result", "application/json-patch+json", `[{"op":"replace","path":"/name","value":""}]`, "name"},
		{"target without host", "application/merge-patch+json", `{"targets":[{"scheme":"http"}]}`, "targets"},
		{"unknown group", "application/merge-patch+json", `{"groupId":"nope"}`, "groupId"},
		{"removing the name", "application/json-patch+json", `[{"op":"remove","path":"/name"}]`, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &testAPI{t: t, srv: a.srv, b: a.b}
			a.expectInvalid(a.do("PATCH", "/api/services/s", tc.ct, tc.body), tc.field)
		})
	}
	if after := decode[gatehouse.Service](t, a.do("GET", "/api/services/s", "", "")); !reflect.DeepEqual(after, before) {
		t.Errorf("failed patches wrote\n %+v\nwas\n %+v", after, before)
	}

	// A patch that does apply, for contrast.
	got := decode[gatehouse.Service](t, a.expect(a.do("PATCH", "/api/services/s", "application/json-patch+json",
		`[{"op":"test","path":"/id","value":"s"},{"op":"add","path":"/targets/-","value":{"host":"10.0.0.2:80"}},{"op":"copy","from":"/domain","path":"/name"}]`), http.StatusOK))
	if got.ID != "s" || len(got.Targets) != 2 || got.Targets[1] != (gatehouse.Target{Host: "10.0.0.2:80", Scheme: "http"}) || got.Name != got.Domain {
		t.Errorf("patched %+v", got)
	}
	a.expect(a.do("GET", "/api/services/moved", "", ""), http.StatusNotFound)
}
