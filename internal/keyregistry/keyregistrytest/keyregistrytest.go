// Package keyregistrytest creates a department's key registry table in an AWS emulator, with
// the key schema the KeyStore component gives the real one (partition key keyregistry.AttrKeyID,
// a string; on demand), for tests of the registry's clients.
package keyregistrytest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// CreateTable creates department's registry table through cfg and returns a client on it.
func CreateTable(t testing.TB, cfg aws.Config, department string) *dynamodb.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := dynamodb.NewFromConfig(cfg)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(keyregistry.TableName(department)),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(keyregistry.AttrKeyID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(keyregistry.AttrKeyID), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("create the key registry table: %v", err)
	}
	return client
}

// Items returns every item of department's table as attribute name → value text, for
// assertions on what the registry stores.
func Items(t testing.TB, client *dynamodb.Client, department string) []map[string]string {
	t.Helper()
	out, err := client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(keyregistry.TableName(department))})
	if err != nil {
		t.Fatalf("scan the key registry table: %v", err)
	}
	var items []map[string]string
	for _, item := range out.Items {
		m := map[string]string{}
		for k, v := range item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				m[k] = v.Value
			case *types.AttributeValueMemberN:
				m[k] = v.Value
			default:
				m[k] = "(other)"
			}
		}
		items = append(items, m)
	}
	return items
}
