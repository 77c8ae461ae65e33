package configs

import "fmt"

// validateRedis checks storage.redis: one way to reach Redis (an address
// or the sentinels, not both), addresses as host:port, and a password
// wherever a username is given (go-redis sends the username only along
// with a password; without one it would silently be the default user).
func (c *Config) validateRedis() []error {
	r := c.Storage.Redis
	s := r.Sentinel
	var errs []error
	if r.Addr != "" {
		if _, port, err := splitHostPort(r.Addr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("storage.redis.addr %q is not host:port", r.Addr))
		}
	}
	if r.Username != "" && r.Password == "" {
		errs = append(errs, fmt.Errorf("storage.redis.username %q needs a password: set WR_REDIS_PASSWORD or WR_REDIS_PASSWORD_FILE", r.Username))
	}
	if s.MasterName == "" {
		var set []string
		if len(s.Addrs) > 0 {
			set = append(set, "storage.redis.sentinel.addrs")
		}
		if s.Username != "" {
			set = append(set, "storage.redis.sentinel.username")
		}
		if s.Password != "" {
			set = append(set, "WR_REDIS_SENTINEL_PASSWORD")
		}
		if len(set) > 0 {
			errs = append(errs, fmt.Errorf("storage.redis.sentinel.master_name is empty but %v is set: name the master the sentinels monitor, or remove the sentinel settings", set))
		}
		return errs
	}
	if r.Addr != "" {
		errs = append(errs, fmt.Errorf("storage.redis.addr (%q) and storage.redis.sentinel.master_name (%q) are both set: with Sentinel the relay asks the sentinels for the master's address, so leave storage.redis.addr (and WR_REDIS_ADDR) empty", r.Addr, s.MasterName))
	}
	if len(s.Addrs) == 0 {
		errs = append(errs, fmt.Errorf("storage.redis.sentinel.addrs: list the sentinels (host:port, usually port 26379) that monitor %q", s.MasterName))
	}
	for i, a := range s.Addrs {
		if _, port, err := splitHostPort(a); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("storage.redis.sentinel.addrs[%d] %q is not host:port", i, a))
		}
	}
	if s.Username != "" && s.Password == "" {
		errs = append(errs, fmt.Errorf("storage.redis.sentinel.username %q needs a password: set WR_REDIS_SENTINEL_PASSWORD or WR_REDIS_SENTINEL_PASSWORD_FILE", s.Username))
	}
	return errs
}
