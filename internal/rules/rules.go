// Package rules holds every validation rule of llm-sandbox once: the stack-file parser
// (config), the components' argument checks, the node agent and sandboxctl call these functions
// and add only the key path in front of the message. Each rule is a pure function that returns
// what is wrong, with the value found, or "" when nothing is.
package rules

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	_ "time/tzdata" // check IANA zones the same way on machines without /usr/share/zoneinfo
	"unicode"
)

// partitions are the AWS partitions and the region names each one takes, most specific first.
// The patterns are the regionRegex of each partition in the AWS SDKs' partition table
// (aws-sdk-go-v2 internal/endpoints/awsrulesfn/partitions.json), with \w narrowed to the
// lowercase letters region names use.
var partitions = []struct {
	id     string
	region *regexp.Regexp
}{
	{"aws-us-gov", regexp.MustCompile(`^us-gov-[a-z]+-[0-9]+$`)},
	{"aws-iso", regexp.MustCompile(`^us-iso-[a-z]+-[0-9]+$`)},
	{"aws-iso-b", regexp.MustCompile(`^us-isob-[a-z]+-[0-9]+$`)},
	{"aws-iso-e", regexp.MustCompile(`^eu-isoe-[a-z]+-[0-9]+$`)},
	{"aws-iso-f", regexp.MustCompile(`^us-isof-[a-z]+-[0-9]+$`)},
	{"aws-cn", regexp.MustCompile(`^cn-[a-z]+-[0-9]+$`)},
	{"aws-eusc", regexp.MustCompile(`^eusc-de-[a-z]+-[0-9]+$`)},
	{"aws", regexp.MustCompile(`^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-[0-9]+$`)},
}

// Partition returns the AWS partition of a region (aws, aws-cn, aws-us-gov, aws-iso, ...), as
// ARNs spell it; "aws" for a name no partition claims.
func Partition(region string) string {
	for _, p := range partitions {
		if p.region.MatchString(region) {
			return p.id
		}
	}
	return "aws"
}

// Region checks an AWS region name: one that a partition of the AWS SDKs' table claims, such as
// ca-central-1, us-gov-west-1, cn-north-1 or eu-isoe-west-1.
func Region(region string) string {
	for _, p := range partitions {
		if p.region.MatchString(region) {
			return ""
		}
	}
	return fmt.Sprintf("must be an AWS region name such as ca-central-1 (got %q)", region)
}

// dnsLabel is a lowercase DNS label that starts with a letter (lengths are checked apart).
// Department and pool names become parts of AWS resource names, DNS names and stack names;
// a leading letter is what every one of those accepts (a load balancer or target group name
// may not start with a hyphen, an IAM role name or a Route 53 record may start with anything).
var dnsLabel = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)

// Size limits of the names that become parts of AWS resource names.
const (
	// MinDepartment and MaxDepartment bound a department name.
	MinDepartment, MaxDepartment = 2, 32
	// MaxPoolName bounds a pool name, which with the department makes up load balancer and
	// target group names of at most 32 characters.
	MaxPoolName = 20
)

// Department checks a department name: a lowercase DNS label of 2 to 32 characters, starting
// with a letter. A name that passes is also a safe stack and file name.
func Department(d string) string {
	if len(d) < MinDepartment || len(d) > MaxDepartment || !dnsLabel.MatchString(d) {
		return fmt.Sprintf("must be a lowercase DNS label of %d to %d letters, digits and hyphens, starting with a letter (got %q)", MinDepartment, MaxDepartment, d)
	}
	return ""
}

// PoolName checks a pool name: a lowercase DNS label of 1 to 20 characters, starting with a
// letter.
func PoolName(n string) string {
	if len(n) > MaxPoolName || !dnsLabel.MatchString(n) {
		return fmt.Sprintf("pool name must be a lowercase DNS label of at most %d characters (got %q)", MaxPoolName, n)
	}
	return ""
}

// GatewayTier is the gateway's name where a pool's name would stand: its Auto Scaling group
// is "<department>-gateway", its node config's pool, and the Pool dimension of its in-flight
// metric (llmmetrics.PoolGateway).
const GatewayTier = "gateway"

// ModelPoolName checks a model pool's name: a PoolName that is not GatewayTier, whose group
// and metrics it would share.
func ModelPoolName(n string) string {
	if msg := PoolName(n); msg != "" {
		return msg
	}
	if n == GatewayTier {
		return fmt.Sprintf("pool name must not be %q, the gateway's: the pool's Auto Scaling group and its metrics' Pool dimension would be the gateway's (got %q)", GatewayTier, n)
	}
	return ""
}

// MaxTeamName bounds a team name, which the key registry stores with each key and the usage
// metrics carry as a dimension.
const MaxTeamName = 32

// TeamName checks a team name: a lowercase DNS label of 1 to 32 characters, starting with a
// letter.
func TeamName(n string) string {
	if len(n) > MaxTeamName || !dnsLabel.MatchString(n) {
		return fmt.Sprintf("team name must be a lowercase DNS label of at most %d characters (got %q)", MaxTeamName, n)
	}
	return ""
}

var acmARN = regexp.MustCompile(`^arn:aws(-[a-z]+)*:acm:([a-z0-9-]+):([0-9]{12}):certificate/[A-Za-z0-9-]+$`)

// ACMCertificateARN checks an ACM certificate ARN and that it is in region, where the load
// balancer that uses it is (ACM certificates are regional). An empty region skips that check.
func ACMCertificateARN(arn, region string) string {
	m := acmARN.FindStringSubmatch(arn)
	switch {
	case m == nil:
		return fmt.Sprintf("must be an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<id> (got %q)", arn)
	case region != "" && m[2] != region:
		return fmt.Sprintf("must be in the stack's region %s, where the load balancer is (got a certificate in %s)", region, m[2])
	}
	return ""
}

var hostedZoneID = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)

// HostedZoneID checks a bare Route 53 hosted zone id: upper-case letters and digits
// (Z0123456789ABCDEFGHIJ), without the /hostedzone/ prefix some APIs return.
func HostedZoneID(z string) string {
	switch {
	case strings.HasPrefix(z, "/hostedzone/"):
		return fmt.Sprintf("must be the bare zone id (got %q; drop the /hostedzone/ prefix)", z)
	case !hostedZoneID.MatchString(z):
		return fmt.Sprintf("must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ (got %q)", z)
	}
	return ""
}

var hostname = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// Hostname checks a lowercase DNS name of at least two labels, each a DNS label, the last
// alphabetic (llm.chem.example.edu), at most 253 characters.
func Hostname(h string) string {
	if len(h) > 253 || !hostname.MatchString(h) {
		return fmt.Sprintf("must be a DNS name such as llm.chem.example.edu (got %q)", h)
	}
	return ""
}

var (
	clock     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	dayName   = `(MON|TUE|WED|THU|FRI|SAT|SUN)`
	daysField = regexp.MustCompile(`^` + dayName + `(-` + dayName + `)?(,` + dayName + `(-` + dayName + `)?)*$`)
)

// Clock checks a 24-hour time of day HH:MM. Such times compare correctly as strings.
func Clock(v string) string {
	if !clock.MatchString(v) {
		return fmt.Sprintf(`must be a 24-hour time HH:MM in quotes, e.g. "08:00" (got %q)`, v)
	}
	return ""
}

// Days checks the day-of-week field of a cron schedule as Auto Scaling takes it: day names as
// a range or a list (MON-FRI, MON,WED,FRI).
func Days(v string) string {
	if !daysField.MatchString(v) {
		return fmt.Sprintf("must be day names MON..SUN as a range or list, e.g. MON-FRI or MON,WED,FRI (got %q)", v)
	}
	return ""
}

// TimeZone checks an IANA time zone name (America/Vancouver). "Local" and "" name no zone.
func TimeZone(tz string) string {
	if _, err := time.LoadLocation(tz); err != nil || tz == "" || tz == "Local" {
		return fmt.Sprintf("must be an IANA time zone name such as America/Vancouver (got %q)", tz)
	}
	return ""
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// IsSHA256Hex reports whether v is a SHA-256 in lowercase hex, as sha256sum prints it.
func IsSHA256Hex(v string) bool { return sha256Hex.MatchString(v) }

// SHA256Hex checks a SHA-256 in lowercase hex.
func SHA256Hex(v string) string {
	if !IsSHA256Hex(v) {
		return fmt.Sprintf("must be 64 lowercase hex digits (got %q)", v)
	}
	return ""
}

var instanceType = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)

// InstanceTypeShape checks that v has the shape of an EC2 instance type (family.size, e.g.
// g5.xlarge); whether the type is in the catalog is the catalog's business.
func InstanceTypeShape(v, example string) string {
	if !instanceType.MatchString(v) {
		return fmt.Sprintf("must be an EC2 instance type such as %s (got %q)", example, v)
	}
	return ""
}

// IsOllamaTag reports whether name is an Ollama tag as clients send it (llama3.1:8b): not
// empty, no whitespace or control characters, no slash (no registry host or namespace, so a
// colon always separates name from tag) and no backslash.
func IsOllamaTag(name string) bool {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// OllamaTag checks an Ollama tag (IsOllamaTag).
func OllamaTag(name string) string {
	if !IsOllamaTag(name) {
		return fmt.Sprintf("must be an Ollama tag such as llama3.1:8b (got %q)", name)
	}
	return ""
}

// Email checks a bare e-mail address (chem-ops@example.edu): what net/mail parses as an address
// with no display name or angle brackets around it, a domain of at least two DNS labels, and at
// most 254 characters (RFC 5321, section 4.5.3.1.3, path length less the brackets). Amazon SNS
// delivers an email subscription's confirmation to exactly this string.
func Email(s string) string {
	bad := fmt.Sprintf("must be an e-mail address such as chem-ops@example.edu (got %q)", s)
	if len(s) > 254 {
		return bad
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return bad
	}
	at := strings.LastIndex(s, "@")
	if at < 1 || Hostname(strings.ToLower(s[at+1:])) != "" {
		return bad
	}
	return ""
}
