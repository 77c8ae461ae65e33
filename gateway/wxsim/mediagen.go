package wxsim

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
)

// The media a simulated client sends must be real enough for the relay to
// store, sniff and show: a decodable PNG or JPEG, and voice/video bytes
// that carry the right magic numbers (AMR header, MP4 ftyp box) though they
// play nothing meaningful.

// testPattern draws a small image whose colours depend on seed, so that two
// generated pictures differ.
func testPattern(seed uint64) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 48, 48))
	r, g := uint8(seed), uint8(seed>>8)
	for y := 0; y < 48; y++ {
		for x := 0; x < 48; x++ {
			img.Set(x, y, color.RGBA{R: r + uint8(x*5), G: g + uint8(y*5), B: uint8((x + y) * 2), A: 255})
		}
	}
	return img
}

// GeneratePNG returns a small valid PNG picture that depends on seed.
func GeneratePNG(seed uint64) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, testPattern(seed)); err != nil {
		panic(err) // encoding an in-memory RGBA image cannot fail
	}
	return b.Bytes()
}

// GenerateJPEG returns a small valid JPEG picture (video thumbnails and
// thumb media must be JPEG).
func GenerateJPEG(seed uint64) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testPattern(seed), &jpeg.Options{Quality: 60}); err != nil {
		panic(err) // encoding an in-memory RGBA image cannot fail
	}
	return b.Bytes()
}

// GenerateAMR returns seconds of AMR-NB "audio" (12.2 kbit/s frames of
// silence-like filler) behind the real "#!AMR\n" header, as WeChat voice
// messages are.
func GenerateAMR(seconds int) []byte {
	if seconds < 1 {
		seconds = 1
	}
	b := bytes.NewBufferString("#!AMR\n")
	frame := make([]byte, 32)
	frame[0] = 0x3C // frame type 7 (12.2 kbit/s), quality bit set
	for i := 0; i < seconds*50; i++ {
		frame[1+i%31] = byte(i)
		b.Write(frame)
	}
	return b.Bytes()
}

// GenerateMP4 returns a small file that starts with a genuine MP4 ftyp box
// followed by an mdat box of filler: typed as video/mp4 by any sniffer,
// though it holds no playable track.
func GenerateMP4(seed uint64) []byte {
	var b bytes.Buffer
	box := func(typ string, payload []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(8+len(payload)))
		b.WriteString(typ)
		b.Write(payload)
	}
	box("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))
	data := make([]byte, 2048)
	for i := range data {
		data[i] = byte(seed) + byte(i*7)
	}
	box("mdat", data)
	return b.Bytes()
}
