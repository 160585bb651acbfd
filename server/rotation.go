package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"gatehouse"
)

// Rotation headers (contract section 14): on answers to calls made with a
// key's previous secret.
const (
	hdrRotationAt        = "Otoroshi-Apikey-Rotation-At"
	hdrRotationRemaining = "Otoroshi-Apikey-Rotation-Remaining"
)

// rotationHeaders tells a client that authenticated with its key's previous
// secret when that secret stops working; the caller checked
// sendOtoroshiHeadersBack. Only such calls pay for it.
func (g *Gateway) rotationHeaders(x *exchange, h http.Header) {
	if x.previousUntil == 0 {
		return
	}
	h[hdrRotationAt] = []string{strconv.FormatInt(x.previousUntil, 10)}
	h[hdrRotationRemaining] = []string{strconv.FormatInt(max(x.previousUntil-g.now().UnixMilli(), 0), 10)}
}

// rotationInterval is how often automatic rotations and expired previous
// secrets are looked for; rotation periods are counted in hours.
const rotationInterval = time.Minute

// rotationLoop runs RotateDue every rotationInterval until ctx is done.
func (s *Server) rotationLoop(ctx context.Context) {
	t := time.NewTicker(rotationInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.RotateDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("automatic secret rotation", "err", err)
			}
		}
	}
}

// RotateDue rotates, as actor "system", the secret of every key whose
// automatic rotation is due at the server's clock, each with its own grace
// period, and forgets the previous secrets whose grace period has ended.
func (s *Server) RotateDue(ctx context.Context) error {
	ctx = gatehouse.WithActor(ctx, gatehouse.ActorSystem)
	now := s.cfg.Now().UnixMilli()
	ids, err := s.store.DueRotations(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := s.store.RotateAPIKeyAt(ctx, id, "", -1, now); err != nil && gatehouse.KindOf(err) != gatehouse.KindNotFound {
			return err
		}
		s.log.Info("api key secret rotated", "client_id", id)
	}
	return s.store.ForgetExpiredSecrets(ctx, now)
}
