package admin

import (
	"net/http"
	"reflect"
	"testing"

	"gatehouse"
)

func TestServices(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustGroup("h")

	// Create: absent fields take the contract's defaults.
	s := decode[gatehouse.Service](t, a.expect(a.do("POST", "/api/services", "",
		`{"id":"api","groupId":"g","name":"API","domain":"Example.COM","targets":[{"host":"127.0.0.1:9999"}]}`), http.StatusCreated))
	want := gatehouse.DefaultService()
	want.ID, want.GroupID, want.Name, want.Domain = "api", "g", "API", "example.com"
	want.Targets = []gatehouse.Target{{Host: "127.0.0.1:9999", Scheme: "http"}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("created\n %+v\nwant\n %+v", s, want)
	}
	if got := decode[gatehouse.Service](t, a.expect(a.do("GET", "/api/services/api", "", ""), 200)); !reflect.DeepEqual(got, want) {
		t.Errorf("get %+v", got)
	}
	a.expect(a.do("POST", "/api/services", "", `{"id":"api","groupId":"g","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}]}`), http.StatusConflict)

	// Field errors name the field; nothing is written.
	for _, tc := range []struct{ body, field string }{
		{`{"groupId":"missing","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}]}`, "groupId"},
		{`{"groupId":"g","name":"","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}]}`, "name"},
		{`{"groupId":"g","name":"x","domain":"x.com","targets":[{"scheme":"http"}]}`, "targets"},
		{`{"groupId":"g","name":"x","domain":"x.com","targets":[{"host":5}]}`, "targets.host"},
		{`{"groupId":"g","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}],"plugins":[{"ref":"nope"}]}`, "plugins"},
		{`{"groupId":"g","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}],"enabled":"yes"}`, "enabled"},
		{`{"groupId":"g","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}],}`, ""},
	} {
		a.expectInvalid(a.do("POST", "/api/services", "", tc.body), tc.field)
	}
	if r := a.do("GET", "/api/services", "", ""); r.header.Get("X-Total-Count") != "1" {
		t.Errorf("invalid creates wrote services: %s", r.body)
	}

	// PUT replaces: every absent field goes back to its default.
	a.expect(a.do("PATCH", "/api/services/api", "", `{"enabled":false,"forceHttps":true,"root":"/v1","additionalHeaders":{"X-A":"1"}}`), 200)
	got := decode[gatehouse.Service](t, a.expect(a.do("PUT", "/api/services/api", "",
		`{"groupId":"h","name":"API 2","domain":"example.com","targets":[{"host":"10.0.0.1:80","scheme":"https"}]}`), 200))
	want.GroupID, want.Name = "h", "API 2"
	want.Targets = []gatehouse.Target{{Host: "10.0.0.1:80", Scheme: "https"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("put\n %+v\nwant\n %+v", got, want)
	}
	if got := decode[gatehouse.Service](t, a.do("GET", "/api/services/api", "", "")); !reflect.DeepEqual(got, want) {
		t.Errorf("after put %+v", got)
	}
	a.expect(a.do("PUT", "/api/services/missing", "", `{"groupId":"g","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}]}`), http.StatusNotFound)
	a.expectInvalid(a.do("PUT", "/api/services/api", "", `{"groupId":"missing","name":"x","domain":"x.com","targets":[{"host":"h:1","scheme":"http"}]}`), "groupId")

	// Lists and their filters.
	a.mustService("web", "g")
	r := a.expect(a.do("GET", "/api/services", "", ""), 200)
	if list := decode[[]gatehouse.Service](t, r); len(list) != 2 || list[0].ID != "api" || list[1].ID != "web" {
		t.Errorf("list %s", r.body)
	}
	if list := decode[[]gatehouse.Service](t, a.do("GET", "/api/services?group=g", "", "")); len(list) != 1 || list[0].ID != "web" {
		t.Errorf("group filter %+v", list)
	}

	// Delete.
	a.expectDeleted(a.do("DELETE", "/api/services/web", "", ""))
	a.expect(a.do("GET", "/api/services/web", "", ""), http.StatusNotFound)
	a.expect(a.do("DELETE", "/api/services/web", "", ""), http.StatusNotFound)
}

func TestServicePluginRefs(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.mustGroup("g")
	a.mustService("s", "g")
	p := a.mustPlugin("auth")

	a.expectInvalid(a.do("PATCH", "/api/services/s", "", `{"plugins":[{"ref":"unknown"}]}`), "plugins")
	got := decode[gatehouse.Service](t, a.expect(a.do("PATCH", "/api/services/s", "",
		`{"plugins":[{"ref":"`+p.ID+`","config":"c"}]}`), 200))
	if !reflect.DeepEqual(got.Plugins, []gatehouse.PluginRef{{Ref: p.ID, Config: "c"}}) {
		t.Errorf("plugins %+v", got.Plugins)
	}

	// An attached plugin cannot be deleted.
	a.expect(a.do("DELETE", "/api/plugins/"+p.ID, "", ""), http.StatusConflict)
	a.expect(a.do("GET", "/api/plugins/"+p.ID, "", ""), http.StatusOK)
	a.expect(a.do("PATCH", "/api/services/s", "application/json-patch+json", `[{"op":"remove","path":"/plugins/0"}]`), 200)
	a.expectDeleted(a.do("DELETE", "/api/plugins/"+p.ID, "", ""))
}
