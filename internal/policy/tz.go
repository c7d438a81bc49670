package policy

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// zoneCache remembers loaded time zones. cel-go's own getHours("Europe/Berlin")
// calls time.LoadLocation on every evaluation, which reads and parses a
// zoneinfo file each time: I/O on the request path and most of an
// evaluation's cost. Only zones that load are kept, so the cache is bounded
// by the zone database however many names requests make up.
type zoneCache struct {
	m sync.Map // string -> *time.Location
}

func (c *zoneCache) load(name string) (*time.Location, error) {
	if l, ok := c.m.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	c.m.Store(name, l)
	return l, nil
}

// location resolves a CEL time zone argument: an IANA name, or a fixed
// offset "[+-]HH:MM" as the CEL spec allows.
func (c *zoneCache) location(tz string) (*time.Location, error) {
	if !strings.Contains(tz, ":") {
		return c.load(tz)
	}
	h, m, _ := strings.Cut(tz, ":")
	hr, err := strconv.Atoi(h)
	if err != nil {
		return nil, fmt.Errorf("timezone offset hours: %w", err)
	}
	min, err := strconv.Atoi(m)
	if err != nil {
		return nil, fmt.Errorf("timezone offset minutes: %w", err)
	}
	if hr < -23 || hr > 23 {
		return nil, fmt.Errorf("timezone offset hours out of range [-23, 23]: %s", tz)
	}
	if min < 0 || min > 59 {
		return nil, fmt.Errorf("timezone offset minutes out of range [0, 59]: %s", tz)
	}
	offset := hr*60 + min
	if strings.HasPrefix(tz, "-") {
		offset = hr*60 - min
	}
	return time.FixedZone("", offset*60), nil
}

// timeZoneFunctions rebinds the standard timestamp accessors that take a
// time zone so they use one zoneCache. The declarations (names, overload
// ids, signatures) are the standard ones; only the implementation changes.
func timeZoneFunctions() []cel.EnvOption {
	zones := &zoneCache{}
	accessors := []struct {
		function, overload string
		get                func(time.Time) int
	}{
		{overloads.TimeGetFullYear, overloads.TimestampToYearWithTz, func(t time.Time) int { return t.Year() }},
		{overloads.TimeGetMonth, overloads.TimestampToMonthWithTz, func(t time.Time) int { return int(t.Month()) - 1 }},
		{overloads.TimeGetDayOfYear, overloads.TimestampToDayOfYearWithTz, func(t time.Time) int { return t.YearDay() - 1 }},
		{overloads.TimeGetDayOfMonth, overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int { return t.Day() - 1 }},
		{overloads.TimeGetDate, overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int { return t.Day() }},
		{overloads.TimeGetDayOfWeek, overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int { return int(t.Weekday()) }},
		{overloads.TimeGetHours, overloads.TimestampToHoursWithTz, func(t time.Time) int { return t.Hour() }},
		{overloads.TimeGetMinutes, overloads.TimestampToMinutesWithTz, func(t time.Time) int { return t.Minute() }},
		{overloads.TimeGetSeconds, overloads.TimestampToSecondsWithTz, func(t time.Time) int { return t.Second() }},
		{overloads.TimeGetMilliseconds, overloads.TimestampToMillisecondsWithTz, func(t time.Time) int { return t.Nanosecond() / 1e6 }},
	}
	opts := make([]cel.EnvOption, 0, len(accessors))
	for _, a := range accessors {
		get := a.get
		opts = append(opts, cel.Function(a.function,
			cel.MemberOverload(a.overload, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
				cel.BinaryBinding(func(ts, tz ref.Val) ref.Val {
					t, ok := ts.(types.Timestamp)
					if !ok {
						return types.MaybeNoSuchOverloadErr(ts)
					}
					name, ok := tz.(types.String)
					if !ok {
						return types.MaybeNoSuchOverloadErr(tz)
					}
					loc, err := zones.location(string(name))
					if err != nil {
						return types.NewErrFromString(err.Error())
					}
					return types.Int(get(t.In(loc)))
				}))))
	}
	return opts
}
