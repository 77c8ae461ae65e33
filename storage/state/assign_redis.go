package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wechat-relay/wechat-relay/relay"
)

var (
	_ relay.Assignments     = (*RedisAssignments)(nil)
	_ relay.BulkAssignments = (*RedisAssignments)(nil)
)

// RedisAssignments is a relay.Assignments kept in one Redis hash, field
// conversation, value employee. One hash keeps the whole table in one
// place for operators (HGETALL) at the cost of living on one cluster slot.
type RedisAssignments struct {
	rdb redis.UniversalClient
	key string
}

// NewRedisAssignments returns Assignments stored in rdb under prefix
// (DefaultPrefix if empty).
func NewRedisAssignments(rdb redis.UniversalClient, prefix string) *RedisAssignments {
	return &RedisAssignments{rdb: rdb, key: keyPrefix(prefix) + "assign"}
}

// Get returns the employee assigned to conv, "" if none.
func (a *RedisAssignments) Get(ctx context.Context, conv relay.ConversationID) (string, error) {
	v, err := a.rdb.HGet(ctx, a.key, string(conv)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("state: get assignment of %s from redis: %w", conv, err)
	}
	return v, nil
}

// GetMany returns the assignments of convs with one HMGET
// (relay.BulkAssignments); unassigned ones are absent.
func (a *RedisAssignments) GetMany(ctx context.Context, convs []relay.ConversationID) (map[relay.ConversationID]string, error) {
	out := make(map[relay.ConversationID]string, len(convs))
	if len(convs) == 0 {
		return out, nil
	}
	fields := make([]string, len(convs))
	for i, c := range convs {
		fields[i] = string(c)
	}
	vals, err := a.rdb.HMGet(ctx, a.key, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("state: get the assignments of %d conversations from redis: %w", len(convs), err)
	}
	for i, v := range vals {
		if s, ok := v.(string); ok && s != "" {
			out[convs[i]] = s
		}
	}
	return out, nil
}

// Set assigns conv to employee; an empty employee removes the
// assignment, which is what Get reports for it anyway.
func (a *RedisAssignments) Set(ctx context.Context, conv relay.ConversationID, employee string) error {
	var err error
	if employee == "" {
		err = a.rdb.HDel(ctx, a.key, string(conv)).Err()
	} else {
		err = a.rdb.HSet(ctx, a.key, string(conv), employee).Err()
	}
	if err != nil {
		return fmt.Errorf("state: set assignment of %s in redis: %w", conv, err)
	}
	return nil
}

// SetIfAbsent runs HSETNX and HGET in one MULTI/EXEC, so the holder it
// returns is the one that won, not one set by a later call.
func (a *RedisAssignments) SetIfAbsent(ctx context.Context, conv relay.ConversationID, employee string) (string, error) {
	if employee == "" {
		return "", fmt.Errorf("state: assign %s: empty employee", conv)
	}
	var get *redis.StringCmd
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, a.key, string(conv), employee)
		get = p.HGet(ctx, a.key, string(conv))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("state: assign %s in redis: %w", conv, err)
	}
	return get.Val(), nil
}
