package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// maxLine bounds one record line; longer lines are reported, not buffered.
const maxLine = 16 << 20

// VerifyOptions adds what the record alone cannot prove.
type VerifyOptions struct {
	// PublicKey, when set, checks the signature of every audit.checkpoint
	// event and reports how much of the record is sealed.
	PublicKey ed25519.PublicKey
	// Head is a head known from elsewhere (Log.Head, a SIEM, a previous
	// verification). The record must contain an event with its Seq and Hash;
	// otherwise it was truncated or rewritten.
	Head *Event
	// RequireCheckpoint fails verification when events follow the last
	// checkpoint (use on a record whose Log was closed cleanly: Close writes
	// a final checkpoint).
	RequireCheckpoint bool
}

// VerifyResult summarises a verified record.
type VerifyResult struct {
	Events         int
	FirstSeq       uint64
	LastSeq        uint64
	LastHash       string
	LastTime       time.Time
	Checkpoints    int       // checkpoint events seen (signatures checked when a PublicKey is given)
	SealedSeq      uint64    // upto_seq of the last valid checkpoint, 0 if none
	SealedTime     time.Time // time of that checkpoint
	UnsealedEvents int       // events after the last checkpoint: not protected against truncation or rewrite
}

// VerifyError names the first place a record fails verification.
type VerifyError struct {
	Seq    uint64 // the seq expected at that line (or the line's seq for a bad event)
	Line   int    // 1-based
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit: verify: line %d, seq %d: %s", e.Line, e.Seq, e.Reason)
}

// Verify checks a record with no outside knowledge: every line is a
// canonical event, Seq increases by one, PrevHash links to the previous
// Hash (to GenesisHash at Seq 1), and every Hash recomputes. It detects any
// edit, deletion, reordering or insertion inside the record; it cannot detect
// a record whose tail was cut off or that was rewritten from some point on
// with a recomputed chain — use VerifyWith with checkpoints or a known head.
func Verify(r io.Reader) (VerifyResult, error) { return VerifyWith(r, VerifyOptions{}) }

// VerifyWith is Verify plus checkpoint signatures and a known head.
func VerifyWith(r io.Reader, o VerifyOptions) (VerifyResult, error) {
	var res VerifyResult
	var prev string
	var expect uint64
	headSeen := false
	keyID := ""
	if o.PublicKey != nil {
		keyID = KeyID(o.PublicKey)
	}
	br := bufio.NewReaderSize(r, 256<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		fail := func(seq uint64, format string, args ...any) (VerifyResult, error) {
			return res, &VerifyError{Seq: seq, Line: lineNo, Reason: fmt.Sprintf(format, args...)}
		}
		if err != nil {
			return fail(expect, "%v", err)
		}
		e, err := parseLine(line)
		if err != nil {
			if res.Events == 0 {
				// No expectation yet: name the seq the line claims, if any.
				var s struct{ Seq uint64 }
				_ = json.Unmarshal(line, &s)
				expect = s.Seq
			}
			return fail(expect, "%v", err)
		}
		if res.Events == 0 {
			res.FirstSeq = e.Seq
			if e.Seq == 0 {
				return fail(0, "seq 0 is not a chained event")
			}
			if e.Seq == 1 && e.PrevHash != GenesisHash {
				return fail(1, "first event's prev_hash is not the genesis hash")
			}
		} else {
			if e.Seq != expect {
				return fail(expect, "found seq %d where seq %d belongs", e.Seq, expect)
			}
			if e.PrevHash != prev {
				return fail(e.Seq, "prev_hash does not link to the hash of seq %d", e.Seq-1)
			}
		}
		canon, err := canonicalJSON(e)
		if err != nil {
			return fail(e.Seq, "%v", err)
		}
		if !bytes.Equal(canon, line) {
			return fail(e.Seq, "line is not in canonical form (extra, duplicate or reformatted fields)")
		}
		h, err := computeHash(e)
		if err != nil {
			return fail(e.Seq, "%v", err)
		}
		if h != e.Hash {
			return fail(e.Seq, "hash does not match the event's content")
		}
		if e.Type == Checkpoint {
			upto, err := checkCheckpoint(e, o.PublicKey, keyID)
			if err != nil {
				return fail(e.Seq, "checkpoint: %v", err)
			}
			res.Checkpoints++
			res.SealedSeq, res.SealedTime, res.UnsealedEvents = upto, e.Time, 0
		} else {
			res.UnsealedEvents++
		}
		if o.Head != nil && e.Seq == o.Head.Seq {
			if e.Hash != o.Head.Hash {
				return fail(e.Seq, "hash differs from the known head: record was rewritten")
			}
			headSeen = true
		}
		res.Events++
		res.LastSeq, res.LastHash, res.LastTime = e.Seq, e.Hash, e.Time
		prev = e.Hash
		expect = e.Seq + 1
	}
	if o.Head != nil && !headSeen && (res.Events == 0 || o.Head.Seq > res.LastSeq) {
		return res, &VerifyError{Seq: res.LastSeq + 1, Line: res.Events + 1,
			Reason: fmt.Sprintf("record ends at seq %d before the known head seq %d: truncated", res.LastSeq, o.Head.Seq)}
	}
	if o.RequireCheckpoint && res.UnsealedEvents > 0 {
		return res, &VerifyError{Seq: res.LastSeq, Line: res.Events,
			Reason: fmt.Sprintf("%d events after the last checkpoint are not sealed", res.UnsealedEvents)}
	}
	return res, nil
}

// checkCheckpoint checks a checkpoint's fields and, when pub is given, its
// signature; it returns upto_seq.
func checkCheckpoint(e *Event, pub ed25519.PublicKey, keyID string) (uint64, error) {
	num, ok := e.Details["upto_seq"].(json.Number)
	if !ok {
		return 0, errors.New("upto_seq missing")
	}
	upto, err := strconv.ParseUint(num.String(), 10, 64)
	if err != nil {
		return 0, errors.New("upto_seq is not a sequence number")
	}
	hash, _ := e.Details["upto_hash"].(string)
	if upto != e.Seq-1 || hash != e.PrevHash {
		return 0, errors.New("does not seal the event before it")
	}
	if pub == nil {
		return upto, nil
	}
	if kid, _ := e.Details["key_id"].(string); kid != keyID {
		return 0, fmt.Errorf("signed by key %q, not by %q", kid, keyID)
	}
	s, _ := e.Details["signature"].(string)
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !ed25519.Verify(pub, CheckpointMessage(upto, hash), sig) {
		return 0, errors.New("signature is invalid")
	}
	return upto, nil
}

// readLine returns the next line without its newline; a final line without
// a newline is an error (a torn write).
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if long != nil {
				return append(long, chunk[:len(chunk)-1]...), nil
			}
			return chunk[:len(chunk)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, chunk...)
			if len(long) > maxLine {
				return nil, fmt.Errorf("line longer than %d bytes", maxLine)
			}
		case err == io.EOF:
			if len(chunk) == 0 && long == nil {
				return nil, io.EOF
			}
			return nil, errors.New("torn last line (no newline)")
		default:
			return nil, err
		}
	}
}

// Query calls fn for each event of a record that f selects and whose Time is
// not before since (zero since: all), in record order. It does not verify
// the chain (use Verify); a line that is not an event is an error naming it.
func Query(r io.Reader, f Filter, since time.Time, fn func(Event) error) error {
	br := bufio.NewReaderSize(r, 256<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: query: line %d: %w", lineNo, err)
		}
		e, err := parseLine(line)
		if err != nil {
			return fmt.Errorf("audit: query: line %d: %w", lineNo, err)
		}
		if !since.IsZero() && e.Time.Before(since) {
			continue
		}
		if f.Match(e) {
			if err := fn(*e); err != nil {
				return err
			}
		}
	}
}
