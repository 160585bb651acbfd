package views

import (
	"testing"
	"time"
)

func TestClusterPage(t *testing.T) {
	t.Parallel()
	seen := time.Date(2026, 12, 1, 21, 30, 0, 0, time.UTC).UnixMilli()
	d := ClusterData{Location: time.UTC, Nodes: []ClusterNode{
		{Name: "leader", Role: "leader", Address: "http://localhost:8080", Revision: 12, LastSeen: seen, Leader: "connected", Redis: "connected"},
		{Name: "w1", Role: "worker", Address: "http://localhost:8081", Revision: 11, LastSeen: seen, Leader: "unreachable", Redis: "connected"},
	}}
	doc, _ := render(t, Page(Shell{Title: "Cluster", Nav: NavCluster, Cluster: true}, ClusterPage(d)))
	rows := doc.Find(`[data-testid="cluster-node"]`)
	if rows.Length() != 2 {
		t.Fatalf("%d node rows, want 2", rows.Length())
	}
	for i, want := range [][]string{
		{"leader", "leader", "http://localhost:8080", "12", "2026-12-01 21:30 UTC", "connected", "connected"},
		{"w1", "worker", "http://localhost:8081", "11", "2026-12-01 21:30 UTC", "unreachable", "connected"},
	} {
		row := rows.Eq(i)
		for j, id := range []string{"node-name", "node-role", "node-address", "node-revision", "node-last-seen", "node-leader", "node-redis"} {
			if got := row.Find(`[data-testid="` + id + `"]`).Text(); got != want[j] {
				t.Errorf("row %d %s = %q, want %q", i, id, got, want[j])
			}
		}
	}
	if cls, _ := rows.Eq(1).Find(`[data-testid="node-leader"]`).Attr("class"); cls != "badge off" {
		t.Errorf("an unreachable leader's badge: %q", cls)
	}
	link := doc.Find(`[data-testid="nav-cluster"]`)
	if link.Length() != 1 || link.AttrOr("href", "") != "/cluster" {
		t.Fatalf("sidebar Cluster link: %d", link.Length())
	}
	doc, _ = render(t, Page(Shell{Title: "x", Nav: NavPlugins}, ErrorPage(404, "x")))
	if doc.Find(`[data-testid="nav-cluster"]`).Length() != 0 {
		t.Error("a node that is no leader links a Cluster page")
	}
}
