//go:build ignore

// gen draws the tray icons: one per state, as PNG (Linux, macOS) and ICO
// (Windows; a PNG inside an ICO container, supported since Windows Vista).
// Run with `go generate ./internal/tray/icons`.
package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const (
	size = 64 // output size in pixels
	ss   = 4  // supersampling factor
)

type canvas struct {
	w   int
	pix []color.NRGBA
}

func newCanvas() *canvas {
	w := size * ss
	return &canvas{w: w, pix: make([]color.NRGBA, w*w)}
}

// fill paints every subpixel whose centre (in output pixel units) satisfies in.
func (c *canvas) fill(col color.NRGBA, in func(x, y float64) bool) {
	for j := 0; j < c.w; j++ {
		for i := 0; i < c.w; i++ {
			x, y := (float64(i)+0.5)/ss, (float64(j)+0.5)/ss
			if in(x, y) {
				c.pix[j*c.w+i] = col
			}
		}
	}
}

func roundRect(x0, y0, x1, y1, r float64) func(x, y float64) bool {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x, x1-r))
		cy := math.Max(y0+r, math.Min(y, y1-r))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
}

func circle(cx, cy, r float64) func(x, y float64) bool {
	return func(x, y float64) bool { return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r }
}

func segment(x0, y0, x1, y1, w float64) func(x, y float64) bool {
	return func(x, y float64) bool {
		dx, dy := x1-x0, y1-y0
		t := ((x-x0)*dx + (y-y0)*dy) / (dx*dx + dy*dy)
		t = math.Max(0, math.Min(1, t))
		px, py := x0+t*dx, y0+t*dy
		return (x-px)*(x-px)+(y-py)*(y-py) <= w*w/4
	}
}

// image averages the subpixels (premultiplied) into the output image.
func (c *canvas) image() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			var r, g, b, a float64
			for j := 0; j < ss; j++ {
				for i := 0; i < ss; i++ {
					p := c.pix[(y*ss+j)*c.w+x*ss+i]
					fa := float64(p.A) / 255
					r += float64(p.R) * fa
					g += float64(p.G) * fa
					b += float64(p.B) * fa
					a += fa
				}
			}
			n := float64(ss * ss)
			if a == 0 {
				continue
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(r / a), uint8(g / a), uint8(b / a), uint8(a / n * 255)})
		}
	}
	return img
}

var (
	white  = color.NRGBA{255, 255, 255, 255}
	gold   = color.NRGBA{0xe0, 0xb0, 0x3c, 255}
	grey   = color.NRGBA{0x8a, 0x8f, 0x98, 255}
	green  = color.NRGBA{0x1f, 0x9d, 0x55, 255}
	blue   = color.NRGBA{0x1e, 0x6f, 0xd9, 255}
	red    = color.NRGBA{0xd3, 0x2f, 0x2f, 255}
	dark   = color.NRGBA{0x37, 0x3d, 0x48, 255}
	orange = color.NRGBA{0xef, 0x8a, 0x17, 255}
)

// card draws the smart card body with its chip.
func card(c *canvas, body color.NRGBA, chip bool) {
	c.fill(dark, roundRect(4, 12, 60, 52, 6))
	c.fill(body, roundRect(6, 14, 58, 50, 5))
	if chip {
		c.fill(gold, roundRect(12, 24, 26, 36, 2))
		c.fill(dark, segment(12, 30, 26, 30, 1))
		c.fill(dark, segment(19, 24, 19, 36, 1))
	}
}

// badge draws the status disc in the lower right corner.
func badge(c *canvas, col color.NRGBA) {
	c.fill(white, circle(47, 47, 15))
	c.fill(col, circle(47, 47, 13))
}

func draw(state string) *image.NRGBA {
	c := newCanvas()
	switch state {
	case "noreader": // grey card, crossed out
		card(c, grey, false)
		c.fill(white, segment(8, 56, 56, 8, 9))
		c.fill(red, segment(8, 56, 56, 8, 5))
	case "nocard": // empty reader slot: dashed outline
		c.fill(grey, roundRect(4, 12, 60, 52, 6))
		c.fill(color.NRGBA{0xf2, 0xf3, 0xf5, 255}, roundRect(8, 16, 56, 48, 4))
		for x := 10.0; x < 54; x += 10 {
			c.fill(grey, segment(x, 32, x+5, 32, 4))
		}
	case "ready":
		card(c, color.NRGBA{0xd8, 0xe8, 0xf8, 255}, true)
		badge(c, green)
		c.fill(white, segment(40, 47, 45, 53, 4))
		c.fill(white, segment(45, 53, 55, 41, 4))
	case "busy":
		card(c, color.NRGBA{0xd8, 0xe8, 0xf8, 255}, true)
		badge(c, blue)
		for _, x := range []float64{40, 47, 54} {
			c.fill(white, circle(x, 47, 2.6))
		}
	case "error":
		card(c, color.NRGBA{0xd8, 0xe8, 0xf8, 255}, true)
		badge(c, red)
		c.fill(white, segment(47, 39, 47, 49, 4.5))
		c.fill(white, circle(47, 55, 2.5))
	case "warning": // PIN blocked and similar: the card needs the holder
		card(c, color.NRGBA{0xd8, 0xe8, 0xf8, 255}, true)
		badge(c, orange)
		c.fill(white, segment(47, 39, 47, 49, 4.5))
		c.fill(white, circle(47, 55, 2.5))
	default:
		log.Fatalf("unknown state %s", state)
	}
	return c.image()
}

// ico wraps a PNG in an ICO container (one image).
func ico(pngData []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, [3]uint16{0, 1, 1}) // reserved, type icon, count
	b.Write([]byte{size, size, 0, 0})                         // width, height, colours, reserved
	binary.Write(&b, binary.LittleEndian, [2]uint16{1, 32})   // planes, bits per pixel
	binary.Write(&b, binary.LittleEndian, [2]uint32{uint32(len(pngData)), 6 + 16})
	b.Write(pngData)
	return b.Bytes()
}

func main() {
	for _, s := range []string{"noreader", "nocard", "ready", "busy", "error", "warning"} {
		var buf bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, draw(s)); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(s+".png", buf.Bytes(), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(s+".ico", ico(buf.Bytes()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
