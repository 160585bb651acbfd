package server

import (
	"html"
	"net/http"
	"strings"

	"gatehouse/server/auth"
	"gatehouse/server/quota"
)

// Messages of the answers the gateway gives itself (contract section 5).
const (
	msgNoRoute        = "no route found"
	msgMaintenance    = "service in maintenance mode"
	msgBuild          = "service under construction"
	msgIPNotAllowed   = "ip address not allowed"
	msgNotAuthorized  = "apikey not authorized on this service"
	msgMethod         = "method not allowed"
	msgPluginFailure  = "plugin failure"
	msgPluginBusy     = "plugin busy"
	msgBadPath        = "bad request path"
	msgBadRequest     = "bad request" // a request body that broke its own framing
	msgBadGateway     = "bad gateway"
	msgGatewayTimeout = "gateway timeout"
	msgBodyTooLarge   = "request body too large"
	msgInternal       = "internal error"
)

// errorBodies caches each message's JSON body: messages are a closed set
// (the gateway's own, and the reasons the auth and quota stages give), so
// an error answer allocates nothing to encode.
var errorBodies = map[string][]byte{}

func init() {
	msgs := []string{msgNoRoute, msgMaintenance, msgBuild, msgIPNotAllowed, msgNotAuthorized,
		msgMethod, msgPluginFailure, msgPluginBusy, msgBadPath, msgBadRequest, msgBadGateway,
		msgGatewayTimeout, msgBodyTooLarge, msgInternal}
	for _, r := range []auth.Result{auth.NoCredential, auth.Invalid, auth.Bad} {
		msgs = append(msgs, r.Message())
	}
	for _, r := range []quota.Reason{quota.Throttling, quota.Daily, quota.Monthly} {
		msgs = append(msgs, r.Message())
	}
	for _, m := range msgs {
		errorBodies[m] = []byte(`{"Otoroshi-Error":"` + m + `"}`)
	}
}

// writeError answers with the gateway's own error: Otoroshi-Error headers and
// a JSON body, or a small HTML page when the client accepts text/html.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h := w.Header()
	h["Otoroshi-Error"] = []string{"true"}
	h["Otoroshi-Error-Msg"] = []string{msg}
	h["Cache-Control"] = []string{"no-store"}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		h["Content-Type"] = []string{"text/html; charset=utf-8"}
		w.WriteHeader(status)
		m := html.EscapeString(msg)
		_, _ = w.Write([]byte("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + http.StatusText(status) +
			"</title></head><body><h1>" + http.StatusText(status) + "</h1><p>" + m + "</p></body></html>\n"))
		return
	}
	h["Content-Type"] = []string{"application/json"}
	w.WriteHeader(status)
	body, ok := errorBodies[msg]
	if !ok {
		body = []byte(`{"Otoroshi-Error":"` + msg + `"}`)
	}
	_, _ = w.Write(body)
}
