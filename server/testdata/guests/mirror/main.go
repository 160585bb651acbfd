//go:build wasip1

// Command mirror is a test plugin that shows the client what it saw: every
// request header comes back as a response header "X-Seen-<name>", with
// X-Seen-Names listing the names, X-Seen-Uri the URI and X-Seen-Config the
// attachment's config. The gateway tests use it to prove what a plugin is
// and is not shown (the caller's client id, never its secret).
package main

import (
	"strings"

	"gatehouse/plugins/guest"
)

func init() {
	guest.HandleRequest(func(req guest.Request, resp guest.Response) (bool, uint32) {
		out := resp.Header()
		names := req.Header().Names()
		for _, n := range names {
			out.Set("X-Seen-"+n, strings.Join(req.Header().Values(n), ","))
		}
		out.Set("X-Seen-Names", strings.Join(names, ","))
		out.Set("X-Seen-Uri", req.URI())
		out.Set("X-Seen-Config", string(guest.Config()))
		return true, 0
	})
}

func main() {}
