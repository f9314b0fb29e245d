// Command mkico writes a Windows .ico holding PNG images (Windows Vista and
// later read PNG-compressed icon entries), for the MSI's Add/Remove
// Programs icon:
//
//	go run ./packaging/cmd/mkico -o cpsagent.ico packaging/icons/cpsagent-{16,32,48,256}.png
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"os"
)

func main() {
	out := flag.String("o", "", "output .ico `FILE`")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkico -o FILE.ico IMAGE.png...")
		os.Exit(2)
	}
	b, err := build(flag.Args())
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkico:", err)
		os.Exit(1)
	}
}

// build lays out ICONDIR, one ICONDIRENTRY per image, then the PNG data.
func build(files []string) ([]byte, error) {
	type img struct {
		w, h int
		data []byte
	}
	var imgs []img
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if cfg.Width > 256 || cfg.Height > 256 {
			return nil, fmt.Errorf("%s: %dx%d is larger than 256x256", f, cfg.Width, cfg.Height)
		}
		imgs = append(imgs, img{cfg.Width, cfg.Height, data})
	}
	if len(imgs) == 0 {
		return nil, errors.New("no image")
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	_ = binary.Write(&b, le, [3]uint16{0, 1, uint16(len(imgs))}) // reserved, type icon, count
	offset := 6 + 16*len(imgs)
	for _, im := range imgs {
		dim := func(n int) byte { return byte(n % 256) } // 256 is written as 0
		b.Write([]byte{dim(im.w), dim(im.h), 0, 0})
		_ = binary.Write(&b, le, [2]uint16{1, 32}) // planes, bits per pixel
		_ = binary.Write(&b, le, [2]uint32{uint32(len(im.data)), uint32(offset)})
		offset += len(im.data)
	}
	for _, im := range imgs {
		b.Write(im.data)
	}
	return b.Bytes(), nil
}
