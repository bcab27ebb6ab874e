package keyregistry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// retriedPut answers PutItem as the table does to an SDK retry of a call whose first attempt
// was stored but whose answer was lost: the item is there (stored holds it, or another
// record under the same id), and the condition fails.
type retriedPut struct {
	API
	stored map[string]types.AttributeValue
	other  bool
}

func (f *retriedPut) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.stored = in.Item
	if f.other {
		f.stored = map[string]types.AttributeValue{}
		for k, v := range in.Item {
			f.stored[k] = v
		}
		f.stored[AttrHash] = &types.AttributeValueMemberS{Value: Hash("sk-someone-else")}
	}
	return nil, &types.ConditionalCheckFailedException{Message: new(string)}
}

func (f *retriedPut) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{Item: f.stored}, nil
}

// An issue whose retried PutItem finds its own record succeeds; one that finds another key's
// record under the id fails.
func TestIssueSurvivesARetriedPut(t *testing.T) {
	now := time.Now()
	r := New(&retriedPut{}, TableName("chem"))
	issued, err := r.Issue(context.Background(), "students", "alice", now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatalf("Issue with its own record already stored: %v", err)
	}
	if id, ok := KeyID(issued.Key); !ok || id != issued.Record.KeyID {
		t.Errorf("Issue returned key %q for record %s", issued.Key, issued.Record.KeyID)
	}

	r = New(&retriedPut{other: true}, TableName("chem"))
	_, err = r.Issue(context.Background(), "students", "bob", now, now.Add(time.Hour), "")
	var failed *types.ConditionalCheckFailedException
	if !errors.As(err, &failed) {
		t.Errorf("Issue over another key's record: %v, want the conditional check's failure", err)
	}
}
