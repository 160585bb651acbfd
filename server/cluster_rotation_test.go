package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"gatehouse/server/cluster/clustertest"
)

// A key in a rotation's grace period works on a worker with its previous
// secret, as on the leader, with the rotation headers: whether the worker
// received it in its snapshot or in the changes after.
func TestClusterWorkerAcceptsPreviousSecrets(t *testing.T) {
	r := clustertest.StartRedis(t)
	up := newUpstream(t)
	leader := newClusterNode(t, "leader", RoleLeader, r.URL, "")
	seedLeader(t, leader, up, 1000)
	ctx := context.Background()
	polled := newKey("polled", "polled-old", withGroupKey("g"))
	if err := leader.st.CreateAPIKey(ctx, &polled); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.st.RotateAPIKey(ctx, "racer", "racer-new", 24); err != nil {
		t.Fatal(err)
	}
	w := newClusterNode(t, "w", RoleWorker, r.URL, leader.url())
	waitUntil(t, "the worker at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })
	if _, err := leader.st.RotateAPIKey(ctx, "polled", "polled-new", 24); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the worker at the leader's revision", func() bool { return w.srv.Revision() == leader.srv.Revision() })

	for _, c := range []struct{ id, old, cur string }{{"racer", "racer-secret", "racer-new"}, {"polled", "polled-old", "polled-new"}} {
		want, err := leader.st.GetAPIKey(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []*clusterNode{leader, w} {
			code, at := n.callRotating(t, c.id, c.old)
			if code != 200 || at == "" || at != strconv.FormatInt(*want.PreviousSecretValidUntil, 10) {
				t.Errorf("%s with %s's previous secret: %d, %s %q; want 200 and %d", n.name, c.id, code, hdrRotationAt, at,
					*want.PreviousSecretValidUntil)
			}
			if code, at := n.callRotating(t, c.id, c.cur); code != 200 || at != "" {
				t.Errorf("%s with %s's new secret: %d, %s %q", n.name, c.id, code, hdrRotationAt, at)
			}
		}
	}
}

// callRotating calls with Basic credentials and answers the status and the
// rotation header.
func (n *clusterNode) callRotating(t *testing.T, id, secret string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.proxy+"/", nil)
	req.Host = "api.test"
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(hdrRotationAt)
}
