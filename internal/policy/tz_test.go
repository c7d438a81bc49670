package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
)

// TestTimeZoneAccessors checks the cached time zone accessors against Go's
// own calendar arithmetic, including a fixed offset and a date where Berlin
// and UTC disagree on the day, month and year.
func TestTimeZoneAccessors(t *testing.T) {
	// 2025-12-31 23:30 UTC is already 2026-01-01 in Berlin.
	now := time.Date(2025, time.December, 31, 23, 30, 45, 123e6, time.UTC)
	zones := []string{"Europe/Berlin", "America/Los_Angeles", "UTC", "+05:30", "-03:15"}
	accessors := []struct {
		fn  string
		get func(time.Time) int
	}{
		{"getFullYear", func(t time.Time) int { return t.Year() }},
		{"getMonth", func(t time.Time) int { return int(t.Month()) - 1 }},
		{"getDayOfYear", func(t time.Time) int { return t.YearDay() - 1 }},
		{"getDayOfMonth", func(t time.Time) int { return t.Day() - 1 }},
		{"getDate", func(t time.Time) int { return t.Day() }},
		{"getDayOfWeek", func(t time.Time) int { return int(t.Weekday()) }},
		{"getHours", func(t time.Time) int { return t.Hour() }},
		{"getMinutes", func(t time.Time) int { return t.Minute() }},
		{"getSeconds", func(t time.Time) int { return t.Second() }},
		{"getMilliseconds", func(t time.Time) int { return t.Nanosecond() / 1e6 }},
	}
	offsets := map[string]*time.Location{"+05:30": time.FixedZone("", 5*3600+30*60), "-03:15": time.FixedZone("", -(3*3600 + 15*60))}
	for _, zone := range zones {
		loc := offsets[zone]
		if loc == nil {
			var err error
			if loc, err = time.LoadLocation(zone); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range accessors {
			want := a.get(now.In(loc))
			when := fmt.Sprintf("now.%s(%q) == %d", a.fn, zone, want)
			t.Run(when, func(t *testing.T) {
				e := compile(t, []Rule{{Name: "r", Grants: []string{"*/*"}, When: when}})
				x := e.Explain(Input{Identity: &core.Principal{}, Grant: ordersReadonly, Now: now})
				if !x.Decision.Allow {
					t.Errorf("%s is false: %+v", when, x.Rules[0])
				}
			})
		}
	}
}

func TestTimeZoneErrors(t *testing.T) {
	for _, tz := range []string{"Mars/Olympus_Mons", "24:00", "+01:60", "x:00", "01:y", ""} {
		t.Run(tz, func(t *testing.T) {
			e := compile(t, []Rule{{Name: "r", Grants: []string{"*/*"}, When: `now.getHours(request.tz) >= 0`}})
			x := e.Explain(Input{Identity: &core.Principal{}, Grant: ordersReadonly, Request: map[string]any{"tz": tz}, Now: time.Now()})
			if tz == "" {
				// An empty name is UTC for time.LoadLocation.
				if !x.Decision.Allow {
					t.Errorf("empty zone denied: %s", x.Decision.Reason)
				}
				return
			}
			if x.Decision.Allow || x.Rules[0].Err == nil {
				t.Errorf("zone %q accepted: %+v", tz, x.Rules[0])
			}
			if strings.Contains(x.Decision.Reason, tz) {
				t.Errorf("reason %q quotes the request value", x.Decision.Reason)
			}
		})
	}
}
