package relay

import (
	"context"
	"errors"
)

// ErrMediaGone is returned by a MediaFetcher when WeChat no longer has
// the media (expired or unknown id): retrying cannot help.
var ErrMediaGone = errors.New("relay: media no longer available from WeChat")

// MediaFetcher downloads a temporary media a client sent. It fills Data,
// ContentType and, when WeChat names it, FileName.
type MediaFetcher interface {
	FetchMedia(ctx context.Context, account, mediaID string) (Media, error)
}
