// Package gateway is wechat-relay's edge towards WeChat: the callback
// handler that turns WeChat's signed (and, in safe mode, encrypted) XML
// callbacks into relay.Messages, the API client that fetches the
// temporary media those messages refer to, and the Sender through which
// the relay answers (customer-service messages, typing, media upload,
// template messages, QR codes). (gateway/wxsim, a local stand-in for
// WeChat's platform, lives in its own package.)
//
// # What it owns
//
//   - Config and its Validate: the Official Accounts served, their
//     secrets and modes, and the edge's limits.
//   - NewCallbackHandler: GET (URL verification) and POST (messages and
//     events) on /wechat/{account}, for plain, compatible and safe mode.
//     Signatures and ciphertexts are checked with silenceper/wechat's
//     primitives (util.Signature, util.AESDecryptMsg); the root package
//     github.com/silenceper/wechat/v2 is never imported, because its
//     init() turns on debug logging of decrypted message bodies.
//   - API: access tokens through silenceper's stable_token handle over a
//     shared cache.Cache, and media download (cgi-bin/media/get).
//   - Sender (relay.Sender): custom/send, custom/typing, media/upload and
//     template/send, with WeChat's errcodes as *relay.SendError, an
//     expired token refreshed once, and a request that may have reached
//     WeChat without an answer reported as relay.ErrOutcomeUnknown — never
//     retried here.
//   - MemoryCache: a concurrency-safe cache.Cache for a single instance.
//
// # Goroutine model
//
// The package starts no goroutines. The handler runs on the HTTP
// server's request goroutines and holds no mutable state besides
// Prometheus counters; API is safe for concurrent use and serialises
// only forced token refreshes, per account. ConfigureAPI writes
// silenceper's process-wide globals and must be called once, by main,
// before any API call.
//
// # Invariants
//
//   - WeChat is answered "success" only after the Acceptor returned nil,
//     that is once the message is durable; any Acceptor error answers
//     503 so that WeChat retries.
//   - Nothing reaches the Acceptor unless its signature matched (compared
//     in constant time), its timestamp is within the skew window, its
//     body within the size limit, its ciphertext opened with the
//     account's key and AppID, and its XML parsed.
//   - Every refusal is answered with a 4xx/5xx and a short reason, logged
//     once (account, reason, remote address) and counted in
//     wechat_relay_callbacks_total{account,result}.
//   - Logs and errors never contain a message body, a Token, an
//     EncodingAESKey, an AppSecret or an access token: API errors pass
//     through redact.
//   - Message.Raw is the plaintext XML exactly as received. The parser
//     reads a sanitised copy, so text with characters XML 1.0 forbids is
//     still accepted, with them replaced by U+FFFD in Text and Attrs.
//   - MsgId stays the decimal string WeChat sent, end to end.
package gateway
