package gatehouse

import (
	"context"
	"sync/atomic"
)

// A write's context carries who makes it (for the change log and the audit
// log) and, for a caller that answers the write, a recorder of the revision
// it committed (for the Gatehouse-Revision header). The store reads both; the
// admin API, the dashboard and the command line set them.

type actorKey struct{}

// Actors of the change log (contract section 14).
const (
	ActorCLI    = "cli"
	ActorSystem = "system"
)

// APIKeyActor and UserActor name an admin API key and a dashboard user as actors.
func APIKeyActor(clientID string) string { return "apikey:" + clientID }
func UserActor(name string) string       { return "user:" + name }

// WithActor returns ctx carrying actor.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorOf returns the actor ctx carries, "system" when none.
func ActorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return ActorSystem
}

type revisionKey struct{}

// RevisionRecorder holds the revision the writes made under one context
// committed (the last, when there were several).
type RevisionRecorder struct{ rev atomic.Int64 }

// WithRevisionRecorder returns ctx carrying a fresh recorder.
func WithRevisionRecorder(ctx context.Context) (context.Context, *RevisionRecorder) {
	r := &RevisionRecorder{}
	return context.WithValue(ctx, revisionKey{}, r), r
}

// RecordRevision tells ctx's recorder, if any, that a write committed rev.
func RecordRevision(ctx context.Context, rev int64) {
	if r, ok := ctx.Value(revisionKey{}).(*RevisionRecorder); ok {
		r.rev.Store(rev)
	}
}

// Revision is the revision recorded, 0 when no write committed.
func (r *RevisionRecorder) Revision() int64 { return r.rev.Load() }

// Change is one entry of the change log: an entity that a revision created,
// updated or deleted. Every committed write gets the next revision, shared by
// all the changes it makes (a bulk import or an apply is one revision).
// Readers (the gateway's in-memory state, cluster workers, the audit log)
// apply changes in revision order and read the entity's current state, so a
// reader that applies a change late can never undo a newer one.
type Change struct {
	Revision int64  `json:"revision"`
	Kind     string `json:"kind"` // one of the Kind* constants below
	ID       string `json:"id"`
	Op       string `json:"op"` // one of the Op* constants below
}

// Kinds of entity in the change log.
const (
	KindGroup   = "group"
	KindService = "service"
	KindAPIKey  = "apikey"
	KindPlugin  = "plugin"
	KindUser    = "user"
)

// Operations of the change log.
const (
	OpCreate      = "create"
	OpUpdate      = "update"
	OpDelete      = "delete"
	OpResetQuotas = "reset-quotas"
)

// OpRotate is a key's secret rotation (contract section 14).
const OpRotate = "rotate"

// KindSession is the audit log's kind of dashboard sign-ins and sign-outs;
// they change no entity and make no revision.
const KindSession = "session"

// Audit actions of sessions (contract section 14).
const (
	ActionSignIn       = "sign-in"
	ActionSignInFailed = "sign-in-failed"
	ActionSignOut      = "sign-out"
)

type requestIPKey struct{}

// WithRequestIP returns ctx carrying the address a write's request came
// from, for the audit log.
func WithRequestIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, requestIPKey{}, ip)
}

// RequestIPOf returns the request address ctx carries, "" when none (the
// command line, automatic jobs).
func RequestIPOf(ctx context.Context) string {
	ip, _ := ctx.Value(requestIPKey{}).(string)
	return ip
}
