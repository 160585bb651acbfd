package views

import "time"

// NavCluster is the sidebar entry of the Cluster page (a leader's only).
const NavCluster = "cluster"

// ClusterURL is the Cluster page.
func ClusterURL() string { return "/cluster" }

// ClusterNode is one node of the Cluster page, as GET /api/cluster/nodes
// lists it.
type ClusterNode struct {
	Name, Role, Address string
	Revision            int64
	LastSeen            int64 // epoch ms
	Leader, Redis       string
}

// ClusterData is the Cluster page: the nodes seen in the last minute.
type ClusterData struct {
	Nodes    []ClusterNode
	Location *time.Location
}

// linkBadge is the badge class of a link state.
func linkBadge(state string) string {
	if state == "connected" {
		return "badge on"
	}
	return "badge off"
}
