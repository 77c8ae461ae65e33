package system

import (
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wechat-relay/wechat-relay/configs"
)

// redisTimeout bounds every dial, read and write to Redis (and to the
// sentinels), so that a hung server cannot stall a callback.
const redisTimeout = 2 * time.Second

// redisClient returns the client of the relay's Redis: through the
// sentinels when storage.redis.sentinel.master_name is set (go-redis'
// failover client, which asks them for the current master and follows
// failovers), else of storage.redis.addr; nil when neither is configured.
// Either way it is a *redis.Client, so the rest of the relay does not
// know which.
func redisClient(c *configs.Config) *redis.Client {
	r := c.Storage.Redis
	switch {
	case r.Sentinel.MasterName != "":
		// ContextTimeoutEnabled makes every call end by its context's
		// deadline, so a hung Redis cannot stall a callback.
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       r.Sentinel.MasterName,
			SentinelAddrs:    r.Sentinel.Addrs,
			SentinelUsername: r.Sentinel.Username,
			SentinelPassword: r.Sentinel.Password,
			Username:         r.Username, Password: r.Password, DB: r.DB,
			ContextTimeoutEnabled: true,
			DialTimeout:           redisTimeout, ReadTimeout: redisTimeout, WriteTimeout: redisTimeout,
		})
	case r.Addr != "":
		return redis.NewClient(&redis.Options{
			Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB,
			ContextTimeoutEnabled: true,
			DialTimeout:           redisTimeout, ReadTimeout: redisTimeout, WriteTimeout: redisTimeout,
		})
	}
	return nil
}
