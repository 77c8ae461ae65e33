package state

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/credential"
	"github.com/silenceper/wechat/v2/util"

	"github.com/wechat-relay/wechat-relay/storage/testenv"
)

// stableTokenServer stands in for WeChat's /cgi-bin/stable_token and
// counts the tokens it hands out.
type stableTokenServer struct {
	*httptest.Server
	issued atomic.Int32
}

func newStableTokenServer(t *testing.T) *stableTokenServer {
	s := &stableTokenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/cgi-bin/stable_token" {
			http.NotFound(w, r)
			return
		}
		var req struct {
			GrantType string `json:"grant_type"`
			AppID     string `json:"appid"`
			Secret    string `json:"secret"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.AppID != "wxtestapp" || req.Secret != "s3cret" || req.GrantType != "client_credential" {
			fmt.Fprint(w, `{"errcode":40013,"errmsg":"invalid appid"}`)
			return
		}
		n := s.issued.Add(1)
		fmt.Fprintf(w, `{"access_token":"TOKEN-%d","expires_in":7200}`, n)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestStableAccessToken runs silenceper's own stable-token handle over
// each cache, against a local stand-in for WeChat. It is the only test
// of the package that sets silenceper's process-wide URI modifier, and it
// does not run in parallel.
func TestStableAccessToken(t *testing.T) {
	srv := newStableTokenServer(t)
	util.SetURIModifier(func(uri string) string {
		return strings.Replace(uri, "https://api.weixin.qq.com", srv.URL, 1)
	})
	t.Cleanup(func() { util.SetURIModifier(nil) })

	t.Run("memory", func(t *testing.T) {
		c := NewMemoryTokenCache()
		testStableAccessToken(t, srv, c, c)
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testRedis(t)
		// A second client stands for a second relay instance.
		other := redis.NewClient(testenv.RedisOptions(rdb.Options().Addr))
		t.Cleanup(func() { other.Close() })
		testStableAccessToken(t, srv,
			NewRedisTokenCache(rdb, prefix, TokenCacheOptions{Logger: testenv.Logger(t)}),
			NewRedisTokenCache(other, prefix, TokenCacheOptions{Logger: testenv.Logger(t)}))
	})
}

// testStableAccessToken checks that a token fetched through c1 is reused
// by later calls and by another handle over c2, and refetched once
// deleted.
func testStableAccessToken(t *testing.T, srv *stableTokenServer, c1, c2 cache.Cache) {
	start := srv.issued.Load()
	want := fmt.Sprintf("TOKEN-%d", start+1)

	first := credential.NewStableAccessToken("wxtestapp", "s3cret", credential.CacheKeyOfficialAccountPrefix, c1)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			got, err := first.GetAccessToken()
			if err != nil {
				t.Error(err)
			}
			if got != want {
				t.Errorf("token = %q, want %q", got, want)
			}
		})
	}
	wg.Wait()

	second := credential.NewStableAccessToken("wxtestapp", "s3cret", credential.CacheKeyOfficialAccountPrefix, c2)
	if got, err := second.GetAccessToken(); err != nil || got != want {
		t.Fatalf("second handle: token = %q, %v; want the cached %q", got, err, want)
	}
	if n := srv.issued.Load() - start; n != 1 {
		t.Fatalf("WeChat issued %d tokens, want 1", n)
	}

	key := fmt.Sprintf("%s_stable_access_token_%s", credential.CacheKeyOfficialAccountPrefix, "wxtestapp")
	if !c2.IsExist(key) {
		t.Fatalf("token not cached under %q", key)
	}
	if err := c2.Delete(key); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("TOKEN-%d", start+2)
	if got, err := first.GetAccessToken(); err != nil || got != want {
		t.Fatalf("after delete: token = %q, %v; want a fresh %q", got, err, want)
	}
}
