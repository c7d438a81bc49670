package audit

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
)

// Gap is the type of the event a sink with a spool writes into its own
// stream where it lost events because the spool was full. It is not part of
// the hash chain: Seq is 0 and PrevHash and Hash are empty. Its Details are
// dropped (number of events lost), first_seq and last_seq (the range of
// sequence numbers lost; events of that range other sinks filtered out are
// included in it, as the sink does not know them).
const Gap = "audit.gap"

// Full-spool policies of a sink with a spool (HTTPOptions.OnFull,
// SyslogOptions.OnFull).
const (
	OnFullFail       = "fail"
	OnFullDropOldest = "drop_oldest"
)

// SpoolStats describes a sink's on-disk spool.
type SpoolStats struct {
	Bytes  int64 // undelivered bytes
	Events int64 // undelivered events (audit.gap events included)
	Full   bool  // the spool filled up and has not drained to half since
	// DroppedEvents counts events discarded (drop_oldest) or rejected
	// (fail) because the spool was full, since the sink was opened.
	DroppedEvents uint64
	// GapEvents counts audit.gap events written into the spool.
	GapEvents uint64
}

// SpoolReporter is implemented by sinks with an on-disk spool; the Log
// exports its numbers as metrics. A sink whose spool is optional (syslog)
// also has a Spooled method, and is left out of the spool metrics when it
// returns false.
type SpoolReporter interface {
	SpoolStats() SpoolStats
}

// gapLineReserve is room kept for a gap line when dropping: its canonical
// JSON is about 280 bytes.
const gapLineReserve = 512

// gapInfo accumulates a lost range of events.
type gapInfo struct {
	dropped     uint64 // events the gap reports
	fresh       uint64 // of which newly lost (not from an earlier gap merged in)
	first, last uint64
}

// add folds one dropped spool line into the gap: an event, or an earlier
// gap event whose range is merged in.
func (g *gapInfo) add(line []byte) {
	var e struct {
		Seq     uint64 `json:"seq"`
		Type    string `json:"type"`
		Details struct {
			Dropped  uint64 `json:"dropped"`
			FirstSeq uint64 `json:"first_seq"`
			LastSeq  uint64 `json:"last_seq"`
		} `json:"details"`
	}
	_ = json.Unmarshal(line, &e) // a spool line is canonical JSON we wrote
	if e.Type == Gap {
		g.dropped += e.Details.Dropped
		if g.first == 0 {
			g.first = e.Details.FirstSeq
		}
		g.last = max(g.last, e.Details.LastSeq)
		return
	}
	g.dropped++
	g.fresh++
	if g.first == 0 {
		g.first = e.Seq
	}
	g.last = max(g.last, e.Seq)
}

// line returns the gap's audit.gap event as a spool line.
func (g *gapInfo) line(now func() time.Time) []byte {
	e := Event{Time: now().UTC(), ID: uuid.NewString(), Type: Gap, Outcome: OutcomeFailure,
		Reason:  "spool full: events lost for this sink",
		Details: map[string]any{"dropped": g.dropped, "first_seq": g.first, "last_seq": g.last}}
	b, err := canonicalJSON(&e)
	if err != nil { // cannot happen: the fields are plain numbers and strings
		panic(err)
	}
	return append(b, '\n')
}

// countLines counts newlines in f between off and end.
func countLines(f *os.File, off, end int64) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, end-off), 64<<10)
	var n int64
	for {
		b, err := br.ReadSlice('\n')
		if err == io.EOF {
			return n, nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return n, err
		}
		if len(b) > 0 {
			n++
		}
	}
}
