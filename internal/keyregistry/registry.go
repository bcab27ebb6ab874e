package keyregistry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The table's attributes. The table's partition key is AttrKeyID; nothing else is indexed
// (listing a department's few hundred keys is one paginated Scan).
const (
	// AttrKeyID is the key's id (string), the partition key.
	AttrKeyID = "keyId"
	// AttrHash is Hash of the key (string).
	AttrHash = "keyHash"
	// AttrTeam is the team's name (string), a key of llm-sandbox:teams.
	AttrTeam = "team"
	// AttrOwner is the owner label the department chose (string): a person's name or email is
	// personal data.
	AttrOwner = "owner"
	// AttrCreated, AttrExpires and AttrRevoked are Unix seconds (numbers); AttrRevoked is
	// absent while the key is valid.
	AttrCreated = "createdAt"
	AttrExpires = "expiresAt"
	AttrRevoked = "revokedAt"
	// AttrReplaces is the id of the key a rotation replaced (string; absent otherwise).
	AttrReplaces = "replaces"
	// AttrPurge is when DynamoDB's time to live deletes the record (Unix seconds, number):
	// PurgeAfter past its expiry, so that owner labels are not kept for ever.
	AttrPurge = "purgeAt"
)

// PurgeAfter is how long a record is kept past its key's expiry (for `keys list --all` and
// usage by key id), before DynamoDB's time to live deletes it.
const PurgeAfter = 90 * 24 * time.Hour

// MaxOwnerLength bounds an owner label.
const MaxOwnerLength = 128

// Record is one key in the registry.
type Record struct {
	KeyID    string     `json:"keyId"`
	Hash     string     `json:"-"`
	Team     string     `json:"team"`
	Owner    string     `json:"owner"`
	Created  time.Time  `json:"createdAt"`
	Expires  time.Time  `json:"expiresAt"`
	Revoked  *time.Time `json:"revokedAt,omitempty"`
	Replaces string     `json:"replaces,omitempty"`
}

// Status is "revoked", "expired" or "active" at now.
func (r Record) Status(now time.Time) string {
	switch {
	case r.Revoked != nil:
		return "revoked"
	case !now.Before(r.Expires):
		return "expired"
	}
	return "active"
}

// OwnerProblem says what is wrong with an owner label, or "".
func OwnerProblem(owner string) string {
	if owner == "" || len(owner) > MaxOwnerLength {
		return fmt.Sprintf("must be 1 to %d characters (got %d)", MaxOwnerLength, len(owner))
	}
	for _, c := range owner {
		if c < 0x20 || c == 0x7f {
			return fmt.Sprintf("must not hold control characters (got %q)", owner)
		}
	}
	return ""
}

// ErrNotFound is returned for a key id the registry does not hold.
var ErrNotFound = errors.New("no such key in the registry")

// ErrRevoked is returned when revoking a key already revoked.
var ErrRevoked = errors.New("the key is already revoked")

// API is the part of the DynamoDB client the registry uses.
type API interface {
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Store is where a department's key records are kept: the DynamoDB table of a deployed stack
// (Registry) or the file of a local run (FileStore). Both hold the same records and answer
// alike, so the keys commands run one code path for either; the gateway's custom-auth module
// reads either with the same checks.
type Store interface {
	// Issue draws a new key of team for owner, valid until expires, and stores its record
	// (replaces names the key a rotation replaces, or is ""). The key is in the result only.
	Issue(ctx context.Context, team, owner string, now, expires time.Time, replaces string) (Issued, error)
	// Get returns the record of a key id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Revoke marks a key revoked at now; an unknown key is ErrNotFound, a revoked one
	// ErrRevoked.
	Revoke(ctx context.Context, id string, now time.Time) error
	// List returns every record, of one team when team is not "", in SortRecords' order.
	List(ctx context.Context, team string) ([]Record, error)
}

var (
	_ Store = (*Registry)(nil)
	_ Store = (*FileStore)(nil)
)

// Registry is a department's registry table.
type Registry struct {
	api   API
	table string
}

// New returns the registry in table.
func New(api API, table string) *Registry { return &Registry{api: api, table: table} }

// Table is the registry's table name.
func (r *Registry) Table() string { return r.table }

// Issued is a new key: the key itself, shown once, and its record.
type Issued struct {
	Key    string
	Record Record
}

// Issue draws a new key of team for owner, valid until expires, and stores its record; the
// record's id must not exist yet (a conditional write).
func (r *Registry) Issue(ctx context.Context, team, owner string, now, expires time.Time, replaces string) (Issued, error) {
	issued, err := newIssued(team, owner, now, expires, replaces)
	if err != nil {
		return Issued{}, err
	}
	rec, id := issued.Record, issued.Record.KeyID
	item := map[string]types.AttributeValue{
		AttrKeyID:   &types.AttributeValueMemberS{Value: rec.KeyID},
		AttrHash:    &types.AttributeValueMemberS{Value: rec.Hash},
		AttrTeam:    &types.AttributeValueMemberS{Value: rec.Team},
		AttrOwner:   &types.AttributeValueMemberS{Value: rec.Owner},
		AttrCreated: unix(rec.Created),
		AttrExpires: unix(rec.Expires),
		AttrPurge:   unix(rec.Expires.Add(PurgeAfter)),
	}
	if replaces != "" {
		item[AttrReplaces] = &types.AttributeValueMemberS{Value: replaces}
	}
	_, err = r.api.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(r.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{
			"#id": AttrKeyID,
		},
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		// The SDK retries a call whose answer it did not get (a timeout, a reset connection):
		// if the first attempt stored the record, the retry finds the id taken. The record is
		// ours when it holds our key's hash; anything else is a true collision.
		if got, getErr := r.Get(ctx, id); getErr == nil && got.Hash == rec.Hash {
			return issued, nil
		}
	}
	if err != nil {
		return Issued{}, fmt.Errorf("store key %s in %s: %w", id, r.table, err)
	}
	return issued, nil
}

// newIssued draws a new key and makes its record (times in whole seconds, UTC): what every
// store's Issue stores.
func newIssued(team, owner string, now, expires time.Time, replaces string) (Issued, error) {
	key, id, err := NewRandomKey()
	if err != nil {
		return Issued{}, err
	}
	rec := Record{KeyID: id, Hash: Hash(key), Team: team, Owner: owner, Created: now.UTC().Truncate(time.Second), Expires: expires.UTC().Truncate(time.Second), Replaces: replaces}
	return Issued{Key: key, Record: rec}, nil
}

// Get returns the record of a key id (strongly consistent, so a key just revoked reads
// revoked).
func (r *Registry) Get(ctx context.Context, id string) (Record, error) {
	out, err := r.api.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(r.table),
		Key:            map[string]types.AttributeValue{AttrKeyID: &types.AttributeValueMemberS{Value: id}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Record{}, fmt.Errorf("read key %s from %s: %w", id, r.table, err)
	}
	if len(out.Item) == 0 {
		return Record{}, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	return decode(out.Item)
}

// Revoke marks a key revoked at now; the gateway refuses it from then on (within its cache's
// lifetime). Revoking an unknown or already revoked key is an error.
func (r *Registry) Revoke(ctx context.Context, id string, now time.Time) error {
	_, err := r.api.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(r.table),
		Key:                      map[string]types.AttributeValue{AttrKeyID: &types.AttributeValueMemberS{Value: id}},
		UpdateExpression:         aws.String("SET #revoked = :now"),
		ConditionExpression:      aws.String("attribute_exists(#id) AND attribute_not_exists(#revoked)"),
		ExpressionAttributeNames: map[string]string{"#id": AttrKeyID, "#revoked": AttrRevoked},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": unix(now.UTC().Truncate(time.Second)),
		},
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		if _, getErr := r.Get(ctx, id); errors.Is(getErr, ErrNotFound) {
			return fmt.Errorf("key %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("key %s: %w", id, ErrRevoked)
	}
	if err != nil {
		return fmt.Errorf("revoke key %s in %s: %w", id, r.table, err)
	}
	return nil
}

// List returns every record, of one team when team is not "", sorted by team, owner and
// creation.
func (r *Registry) List(ctx context.Context, team string) ([]Record, error) {
	in := &dynamodb.ScanInput{TableName: aws.String(r.table), ConsistentRead: aws.Bool(true)}
	if team != "" {
		in.FilterExpression = aws.String("#team = :team")
		in.ExpressionAttributeNames = map[string]string{"#team": AttrTeam}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":team": &types.AttributeValueMemberS{Value: team}}
	}
	var out []Record
	for {
		page, err := r.api.Scan(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list keys in %s: %w", r.table, err)
		}
		for _, item := range page.Items {
			rec, err := decode(item)
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	SortRecords(out)
	return out, nil
}

// SortRecords sorts records by team, owner, creation and id: the order List returns.
func SortRecords(recs []Record) {
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Team != b.Team {
			return a.Team < b.Team
		}
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.KeyID < b.KeyID
	})
}

func unix(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(t.Unix(), 10)}
}

// decode reads a record; a malformed item is an error naming its id.
func decode(item map[string]types.AttributeValue) (Record, error) {
	var rec Record
	var problems []string
	str := func(name string, dst *string, required bool) {
		v, ok := item[name].(*types.AttributeValueMemberS)
		if !ok {
			if required {
				problems = append(problems, name)
			}
			return
		}
		*dst = v.Value
	}
	tm := func(name string, required bool) *time.Time {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			if required {
				problems = append(problems, name)
			}
			return nil
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			problems = append(problems, name)
			return nil
		}
		t := time.Unix(n, 0).UTC()
		return &t
	}
	str(AttrKeyID, &rec.KeyID, true)
	str(AttrHash, &rec.Hash, true)
	str(AttrTeam, &rec.Team, true)
	str(AttrOwner, &rec.Owner, true)
	str(AttrReplaces, &rec.Replaces, false)
	if t := tm(AttrCreated, true); t != nil {
		rec.Created = *t
	}
	if t := tm(AttrExpires, true); t != nil {
		rec.Expires = *t
	}
	rec.Revoked = tm(AttrRevoked, false)
	if len(problems) > 0 {
		return Record{}, fmt.Errorf("registry record %q: missing or malformed %v", rec.KeyID, problems)
	}
	return rec, nil
}
