package status

import (
	"fmt"
	"strings"
	"time"
)

// Hours are a pool's office hours as the stack file gives them (llm-sandbox:pools.<name>.schedule):
// the pool scales up at Start and to zero at Stop on Days, in Timezone (the modelpool
// component's scheduled actions).
type Hours struct {
	// Timezone is an IANA time zone name, e.g. America/Vancouver.
	Timezone string `json:"timezone"`
	// Days is a cron day-of-week field of three-letter names: "MON-FRI", "MON,WED,FRI".
	Days string `json:"days"`
	// Start and Stop are 24-hour "HH:MM" times in Timezone.
	Start string `json:"start"`
	Stop  string `json:"stop"`
}

// String is the hours as the stack file spells them: "MON-FRI 08:00-18:00 America/Vancouver".
func (h Hours) String() string {
	return fmt.Sprintf("%s %s-%s %s", h.Days, h.Start, h.Stop, h.Timezone)
}

var weekdays = map[string]time.Weekday{
	"SUN": time.Sunday, "MON": time.Monday, "TUE": time.Tuesday, "WED": time.Wednesday,
	"THU": time.Thursday, "FRI": time.Friday, "SAT": time.Saturday,
}

// Contains reports whether t falls within the hours: on one of Days, at or after Start and
// before Stop, in Timezone. A range of days may wrap past Saturday (FRI-MON).
func (h Hours) Contains(t time.Time) (bool, error) {
	loc, err := time.LoadLocation(h.Timezone)
	if err != nil || h.Timezone == "" {
		return false, fmt.Errorf("schedule timezone %q: not an IANA time zone", h.Timezone)
	}
	local := t.In(loc)
	on := false
	for _, part := range strings.Split(h.Days, ",") {
		from, to, isRange := strings.Cut(part, "-")
		first, ok1 := weekdays[from]
		last, ok2 := weekdays[to]
		if !isRange {
			last, ok2 = first, ok1
		}
		if !ok1 || !ok2 {
			return false, fmt.Errorf("schedule days %q: want day names MON..SUN as a range or list", h.Days)
		}
		for d := first; ; d = (d + 1) % 7 {
			if d == local.Weekday() {
				on = true
			}
			if d == last {
				break
			}
		}
	}
	clock := local.Format("15:04")
	return on && clock >= h.Start && clock < h.Stop, nil
}
