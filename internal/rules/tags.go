package rules

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tag limits shared by the AWS services a department's resources live in (EC2, S3, KMS,
// Secrets Manager, DynamoDB, ELB, Auto Scaling), from "Tag restrictions" in
// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions.
const (
	// MaxTagsPerResource is the most user tags one resource may carry; tags with the aws:
	// prefix, which AWS sets, do not count.
	MaxTagsPerResource = 50
	// MaxTagKey and MaxTagValue are the longest key and value, in Unicode characters.
	MaxTagKey, MaxTagValue = 128, 256
)

// tagSymbols are the characters besides letters, digits and spaces that every AWS service
// takes in tags (the same page: "letters, numbers, and spaces representable in UTF-8, and the
// following characters: + - = . _ : / @").
const tagSymbols = "+-=._:/@"

// TagKey checks a tag key. Keys also become instance tags that the nodes read through instance
// metadata (the launch templates enable it), which takes only ASCII letters, digits and
// + - = . , _ : @ in keys, no spaces or slashes, and neither ".", ".." nor "_index" (same page,
// "Tag restrictions", instance tags in instance metadata); the key rule is the intersection of
// the two.
func TagKey(k string) string {
	n := utf8.RuneCountInString(k)
	switch {
	case n == 0 || n > MaxTagKey:
		return fmt.Sprintf("tag keys must be 1 to %d characters (got %d)", MaxTagKey, n)
	case strings.HasPrefix(strings.ToLower(k), "aws:"):
		return fmt.Sprintf("tag keys starting with aws: are reserved by AWS (got %q)", k)
	case k == "." || k == ".." || k == "_index":
		return fmt.Sprintf("tag keys may not be \".\", \"..\" or \"_index\", which instance metadata cannot hold (got %q)", k)
	}
	for _, r := range k {
		if !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) || strings.ContainsRune("+-=._:@", r)) {
			return fmt.Sprintf("tag keys may hold only ASCII letters, digits and + - = . _ : @ (got %q, with %q)", k, r)
		}
	}
	return ""
}

// TagValue checks a tag value: at most 256 characters, each a letter, a digit, a space or one
// of + - = . _ : / @. Control characters (a tab, a newline) are refused.
func TagValue(v string) string {
	if n := utf8.RuneCountInString(v); n > MaxTagValue || !utf8.ValidString(v) {
		return fmt.Sprintf("tag values must be at most %d characters (got %d)", MaxTagValue, n)
	}
	if strings.HasPrefix(strings.ToLower(v), "aws:") {
		return fmt.Sprintf("tag values starting with aws: are reserved by AWS (got %q)", v)
	}
	for _, r := range v {
		if !(unicode.IsLetter(r) || unicode.IsNumber(r) || r == ' ' || unicode.Is(unicode.Zs, r) || strings.ContainsRune(tagSymbols, r)) {
			return fmt.Sprintf("tag values may hold only letters, digits, spaces and + - = . _ : / @ (got %q, with %q)", v, r)
		}
	}
	return ""
}

// TagCount checks that user tags fit beside the tags the project sets itself on the same
// resource, within MaxTagsPerResource.
func TagCount(user, project int) string {
	if limit := MaxTagsPerResource - project; user > limit {
		return fmt.Sprintf("at most %d tags (AWS allows %d per resource and llm-sandbox sets %d itself; got %d)", limit, MaxTagsPerResource, project, user)
	}
	return ""
}
