package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Checkpoints. Every CheckpointEvery events and every CheckpointInterval the
// Log appends an event of type audit.checkpoint (outcome "success") to the
// chain, right after the event it seals. Its Details are:
//
//	upto_seq   number  Seq of the last event sealed (the checkpoint's Seq-1)
//	upto_hash  string  Hash of that event (equal to the checkpoint's PrevHash)
//	key_id     string  KeyID of the signing key
//	signature  string  unpadded base64url Ed25519 signature over
//	                   CheckpointMessage(upto_seq, upto_hash)
//
// A signature needs the private audit key, which an attacker who can edit
// the file does not have: rewriting history before a checkpoint (even with a
// recomputed chain) breaks a signature, and events after the last
// checkpoint are exactly the ones an attacker could rewrite or drop unseen.

// CheckpointMessage returns the bytes a checkpoint signature covers.
func CheckpointMessage(uptoSeq uint64, uptoHash string) []byte {
	return []byte("stint-audit-checkpoint-v1\n" + strconv.FormatUint(uptoSeq, 10) + "\n" + uptoHash)
}

// KeyID names an audit public key: hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

type checkpointer struct {
	l        *Log
	key      ed25519.PrivateKey
	keyID    string
	every    int
	interval time.Duration

	since int // events since the last checkpoint; guarded by l.sem

	quit chan struct{}
	done chan struct{}
}

func newCheckpointer(l *Log, o Options) (*checkpointer, error) {
	if len(o.CheckpointKey) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: checkpoint key is not an Ed25519 private key")
	}
	c := &checkpointer{l: l, key: o.CheckpointKey, every: o.CheckpointEvery, interval: o.CheckpointInterval,
		quit: make(chan struct{}), done: make(chan struct{})}
	c.keyID = KeyID(o.CheckpointKey.Public().(ed25519.PublicKey))
	if c.every <= 0 {
		c.every = 1000
	}
	if c.interval <= 0 {
		c.interval = time.Minute
	}
	return c, nil
}

// count adds n recorded events and reports whether a checkpoint is due.
// Caller holds l.sem.
func (c *checkpointer) count(n int) bool {
	c.since += n
	return c.since >= c.every
}

func (c *checkpointer) reset() { c.since = 0 }

// build returns an unchained checkpoint sealing (seq, hash).
func (c *checkpointer) build(seq uint64, hash string) Event {
	sig := ed25519.Sign(c.key, CheckpointMessage(seq, hash))
	return Event{
		Type:    Checkpoint,
		Outcome: OutcomeSuccess,
		Details: map[string]any{
			"upto_seq":  seq,
			"upto_hash": hash,
			"key_id":    c.keyID,
			"signature": base64.RawURLEncoding.EncodeToString(sig),
		},
	}
}

// seal appends a checkpoint now if events were recorded since the last one,
// and waits for the required sinks.
func (c *checkpointer) seal(ctx context.Context) error {
	l := c.l
	if err := l.lock(ctx); err != nil {
		return err
	}
	if l.isClosed() || c.since == 0 {
		l.unlock()
		return nil
	}
	if err := l.reserve(ctx, 1); err != nil {
		l.unlock()
		return err
	}
	cp := c.build(l.seq, l.prev)
	seq, prev, err := l.chain(&cp, l.seq, l.prev, nil)
	if err != nil {
		l.unlock()
		return err
	}
	l.setHead(seq, prev)
	c.reset()
	batches := l.enqueue([]Event{cp})
	l.unlock()
	if err := l.wait(ctx, batches); err != nil {
		return fmt.Errorf("audit: checkpoint seq %d: %w", seq, err)
	}
	return nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			// Bounded, so that a stuck required sink cannot keep stop waiting.
			ctx, cancel := context.WithTimeout(context.Background(), c.interval)
			err := c.seal(ctx)
			cancel()
			if err != nil {
				c.l.logger.Error("audit: timed checkpoint failed", "err", err)
			}
		}
	}
}

func (c *checkpointer) stop() {
	close(c.quit)
	<-c.done
}
