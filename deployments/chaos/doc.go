// Package chaos is the chaos suite (`make chaos`): two wechat-relay
// processes on one ClickHouse and one Redis behind a local balancer,
// simulated WeChat clients writing in with WeChat's real retry schedule,
// console consumers that disconnect and resume, employees replying, and
// a fault schedule that kills and hangs everything in turn. A checker
// then reads the archive, the consumers' records and the simulator's
// log of sends, and fails on anything lost, doubled, reordered,
// delivered before it was archived, or sent twice.
//
// It holds no code the relay runs: the suite is TestChaos, which runs
// only when WR_CHAOS=1 (the Makefile's chaos target and .ci/test.sh set
// it), on its own, because it builds the binary and starts private
// ClickHouse and Redis servers that it stops, pauses and kills. See
// docs/chaos.md for the schedule, the knobs and how to read the report.
package chaos
