package verify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
)

// chunkedGateway streams a three-chunk answer whose chunks carry one id, or (changingIDs)
// each its own, as LiteLLM 1.108.7 does without the gateway's callback module; and it embeds
// with vectors of the given sizes.
type chunkedGateway struct {
	changingIDs bool
	dims        []int
}

func (g chunkedGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		w.Header().Set("Content-Type", "text/event-stream")
		for i, text := range []string{"yes", " it", " is"} {
			id := "chatcmpl-1"
			if g.changingIDs {
				id = fmt.Sprintf("chatcmpl-%d", i+1)
			}
			finish := "null"
			if i == 2 {
				finish = `"stop"`
			}
			fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":%s}]}\n\n", id, text, finish)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	case "/v1/embeddings":
		w.Header().Set("Content-Type", "application/json")
		var data []string
		for i, d := range g.dims {
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":[%s]}`, i, strings.TrimSuffix(strings.Repeat("0.5,", d), ",")))
		}
		fmt.Fprintf(w, `{"object":"list","data":[%s],"model":"m"}`, strings.Join(data, ","))
	default:
		http.NotFound(w, r)
	}
}

func client(t *testing.T, g chunkedGateway) *loadgen.Client {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c := loadgen.NewClient(srv.URL, "sk-test", 1)
	t.Cleanup(c.Close)
	return c
}

// A stream whose chunks change id fails: an SDK's accumulator keeps only the first chunk.
func TestStreamChunksMustShareTheStreamID(t *testing.T) {
	if st := stream(t.Context(), client(t, chunkedGateway{}), "m", time.Minute); !st.OK || !st.Done || st.Tokens != 3 || st.FinishReason != "stop" {
		t.Errorf("one id: %+v, want ok with 3 chunks", st)
	}
	st := stream(t.Context(), client(t, chunkedGateway{changingIDs: true}), "m", time.Minute)
	if st.OK || !strings.Contains(st.Detail, "an SDK's accumulator drops it") {
		t.Errorf("changing ids: %+v, want a failure naming the id", st)
	}
}

func TestEmbeddingCheck(t *testing.T) {
	if e := embedding(t.Context(), client(t, chunkedGateway{dims: []int{4, 4}}), "m", time.Minute); !e.OK || e.Vectors != 2 || e.Dimensions != 4 {
		t.Errorf("two vectors of 4: %+v, want ok", e)
	}
	for _, dims := range [][]int{{4}, {4, 3}, {0, 0}} {
		if e := embedding(t.Context(), client(t, chunkedGateway{dims: dims}), "m", time.Minute); e.OK {
			t.Errorf("vectors of sizes %v: %+v, want a failure", dims, e)
		}
	}
	if !IsEmbedding("nomic-embed-text") || IsEmbedding("llama3.1:8b") || IsEmbedding("unknown") {
		t.Errorf("IsEmbedding does not follow the catalog")
	}
}
