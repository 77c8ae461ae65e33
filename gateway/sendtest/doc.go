// Package sendtest tests gateway.Sender against the WeChat simulator
// (gateway/wxsim), end to end: the relay's callback handler receives the
// simulated clients' messages and events, and the Sender's calls land on
// the simulated phones.
//
// It is a package of its own because gateway.ConfigureAPI, through which
// access tokens are fetched, is process-wide: gateway's own tests point it
// at a small fake, these at the simulator. The simulator's clock and
// fault injection are shared by every test of the binary, so the tests
// here run one after another.
package sendtest
