package cost

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// action is one scheduled action's firing in the week: the minute of the week (Sunday 00:00
// is 0) and the sizes it sets.
type action struct {
	minute   int
	min, max float64
}

const minutesPerWeek = 7 * 24 * 60

var dayNames = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

// weeklyMinutes returns the minutes of the week at which a scheduled action's recurrence fires.
// It takes the form the project renders, "M H * * DAYS" (Auto Scaling's Unix cron: minute, hour,
// day of month, month, day of week), with DAYS a list of days or ranges by name (MON-FRI) or
// number (0 or 7 is Sunday), or *. Minutes are in the action's time zone: the week is a local
// week, and a daylight-saving change moves no action relative to the others.
func weeklyMinutes(recurrence string) ([]int, error) {
	f := strings.Fields(recurrence)
	if len(f) != 5 {
		return nil, fmt.Errorf("recurrence %q: want five cron fields (minute hour day-of-month month day-of-week)", recurrence)
	}
	if f[2] != "*" || f[3] != "*" {
		return nil, fmt.Errorf("recurrence %q: only * is supported for day of month and month", recurrence)
	}
	minute, err := strconv.Atoi(f[0])
	if err != nil || minute < 0 || minute > 59 {
		return nil, fmt.Errorf("recurrence %q: minute %q is not 0-59", recurrence, f[0])
	}
	hour, err := strconv.Atoi(f[1])
	if err != nil || hour < 0 || hour > 23 {
		return nil, fmt.Errorf("recurrence %q: hour %q is not 0-23", recurrence, f[1])
	}
	days, err := cronDays(f[4])
	if err != nil {
		return nil, fmt.Errorf("recurrence %q: %w", recurrence, err)
	}
	var out []int
	for _, d := range days {
		out = append(out, d*24*60+hour*60+minute)
	}
	return out, nil
}

func cronDays(field string) ([]int, error) {
	if field == "*" || field == "?" {
		return []int{0, 1, 2, 3, 4, 5, 6}, nil
	}
	day := func(s string) (int, error) {
		if d, ok := dayNames[strings.ToUpper(s)]; ok {
			return d, nil
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 || d > 7 {
			return 0, fmt.Errorf("day of week %q is not SUN-SAT or 0-7", s)
		}
		return d % 7, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(field, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		from, err := day(lo)
		if err != nil {
			return nil, err
		}
		to := from
		if isRange {
			if to, err = day(hi); err != nil {
				return nil, err
			}
			if hi == "7" {
				to = 7
			}
		}
		if to < from {
			return nil, fmt.Errorf("day range %q runs backwards", part)
		}
		for d := from; d <= to; d++ {
			seen[d%7] = true
		}
	}
	var out []int
	for d := range seen {
		out = append(out, d)
	}
	sort.Ints(out)
	return out, nil
}

// weeklyHours returns the instance-hours a week at minimum and at maximum size when the actions
// fire every week: from each firing to the next (round the end of the week) the group holds the
// sizes that firing set.
func weeklyHours(actions []action) (minHours, maxHours float64) {
	sort.Slice(actions, func(i, j int) bool { return actions[i].minute < actions[j].minute })
	for i, a := range actions {
		next := minutesPerWeek + actions[0].minute
		if i+1 < len(actions) {
			next = actions[i+1].minute
		}
		h := float64(next-a.minute) / 60
		minHours += h * a.min
		maxHours += h * a.max
	}
	return minHours, maxHours
}
