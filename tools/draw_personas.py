"""Draw the example persona portraits, assets/dr_chen.png and assets/nurse_li.png.

The portraits are simple front-facing illustrations made from PIL shapes, so
the example catalogue ships with images anyone may use and the repository
needs no photographs. Drawing happens at SUPERSAMPLE times the output size and
is then scaled down, which smooths every edge. The output is deterministic:
rerunning the script rewrites identical files.

Usage: python tools/draw_personas.py [--out assets] [--size-px 768]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

SUPERSAMPLE = 2
DESIGN_UNITS = 1000  # every coordinate below is in a 1000 x 1000 design square
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    """What tells the personas apart; everything else is shared."""

    name: str
    skin: Colour
    hair: Colour
    hair_style: str  # "bob" (short, to the jaw) | "bun" (tied back)
    outfit: str  # "coat" (white coat over a shirt) | "scrubs" (nurse uniform)
    outfit_colour: Colour
    shirt: Colour
    iris: Colour
    lips: Colour
    wall_top: Colour
    wall_bottom: Colour


LOOKS = (
    Look(
        "dr_chen",
        skin=(236, 200, 172),
        hair=(34, 30, 32),
        hair_style="bob",
        outfit="coat",
        outfit_colour=(248, 249, 250),
        shirt=(156, 192, 228),
        iris=(74, 50, 36),
        lips=(196, 112, 108),
        wall_top=(222, 234, 240),
        wall_bottom=(196, 214, 224),
    ),
    Look(
        "nurse_li",
        skin=(240, 208, 182),
        hair=(52, 38, 32),
        hair_style="bun",
        outfit="scrubs",
        outfit_colour=(120, 178, 204),
        shirt=(98, 156, 184),
        iris=(66, 44, 32),
        lips=(204, 116, 116),
        wall_top=(232, 238, 230),
        wall_bottom=(206, 220, 206),
    ),
)


class Canvas:
    """An RGB image addressed in design units."""

    def __init__(self, size_px: int):
        self.size_px = size_px
        self.image = Image.new("RGB", (size_px, size_px))
        self.draw = ImageDraw.Draw(self.image)

    def s(self, value: float) -> int:
        return round(value * self.size_px / DESIGN_UNITS)

    def box(self, cx: float, cy: float, rx: float, ry: float) -> tuple[int, int, int, int]:
        return (self.s(cx - rx), self.s(cy - ry), self.s(cx + rx), self.s(cy + ry))

    def points(self, pts: list[tuple[float, float]]) -> list[tuple[int, int]]:
        return [(self.s(x), self.s(y)) for x, y in pts]

    def soft(self, colour: Colour, opacity: float, blur: float, shape, clip=None) -> None:
        """Blend `colour` through a blurred mask: shadows, blush, the halo.

        Only the mask is blurred, never colours, so the soft edge fades to the
        picture underneath rather than through black. `clip` (a shape drawn
        sharp) keeps a shadow on the part it belongs to.
        """
        mask = self._mask(shape, round(255 * opacity)).filter(ImageFilter.GaussianBlur(self.s(blur)))
        if clip is not None:
            mask = ImageChops.multiply(mask, self._mask(clip, 255))
        self.image.paste(colour, (0, 0), mask)

    def _mask(self, shape, fill: int) -> Image.Image:
        mask = Image.new("L", self.image.size, 0)
        shape(ImageDraw.Draw(mask), fill)
        return mask


def shade(colour: Colour, factor: float) -> Colour:
    return tuple(max(0, min(255, round(c * factor))) for c in colour)


def bezier(p0, p1, p2, steps: int = 40) -> list[tuple[float, float]]:
    """Points of a quadratic Bezier curve from p0 to p2 pulled toward p1."""
    pts = []
    for i in range(steps + 1):
        t = i / steps
        x = (1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t**2 * p2[0]
        y = (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t**2 * p2[1]
        pts.append((x, y))
    return pts


def draw_background(c: Canvas, look: Look) -> None:
    """A plain clinic wall: a vertical gradient, a skirting rail, a soft halo behind the head."""
    for y in range(c.size_px):
        t = y / (c.size_px - 1)
        row = tuple(round(a + (b - a) * t) for a, b in zip(look.wall_top, look.wall_bottom))
        c.draw.line([(0, y), (c.size_px, y)], fill=row)
    rail = shade(look.wall_bottom, 0.93)
    c.draw.rectangle((0, c.s(700), c.size_px, c.s(712)), fill=rail)
    c.soft((255, 255, 255), 0.35, 60, lambda d, a: d.ellipse(c.box(500, 400, 300, 300), fill=a))


def draw_body(c: Canvas, look: Look) -> None:
    """Shoulders, neck and the outfit's neckline."""
    c.soft((40, 50, 60), 0.25, 18, lambda d, a: _torso(c, d, a, grow=12))
    neck = c.box(500, 545, 50, 75)
    c.draw.rectangle(neck, fill=shade(look.skin, 0.95))
    c.soft(
        shade(look.skin, 0.7),
        0.8,
        12,
        lambda d, a: d.ellipse(c.box(500, 505, 70, 40), fill=a),
        clip=lambda d, a: d.rectangle(neck, fill=a),
    )
    _torso(c, c.draw, look.outfit_colour)
    if look.outfit == "coat":
        draw_coat(c, look)
    else:
        draw_scrubs(c, look)


def _torso(c: Canvas, draw: ImageDraw.ImageDraw, fill, grow: float = 0) -> None:
    """Sloping shoulders (the top of a wide ellipse) over a straight body."""
    draw.ellipse(c.box(500, 780, 320 + grow, 200 + grow), fill=fill)
    draw.rectangle(c.box(500, 900, 320 + grow, 120), fill=fill)


def draw_coat(c: Canvas, look: Look) -> None:
    """White coat with lapels open over a blue shirt, a pocket with a pen."""
    c.draw.polygon(c.points([(430, 600), (570, 600), (500, 800)]), fill=look.shirt)
    c.draw.polygon(
        c.points([(452, 588), (500, 640), (548, 588), (548, 620), (500, 668), (452, 620)]), fill=shade(look.shirt, 1.08)
    )
    lapel_edge = shade(look.outfit_colour, 0.82)
    for side in (-1, 1):
        lapel = [(500 + side * 75, 600), (500 + side * 10, 830), (500 + side * 95, 720), (500 + side * 130, 630)]
        c.draw.polygon(c.points(lapel), fill=look.outfit_colour, outline=lapel_edge, width=c.s(3))
    c.draw.line(c.points([(500, 830), (500, 1000)]), fill=lapel_edge, width=c.s(3))
    c.draw.rectangle(c.box(680, 840, 55, 45), outline=lapel_edge, width=c.s(3))
    c.draw.rounded_rectangle(c.box(665, 815, 7, 35), radius=c.s(5), fill=(40, 70, 140))


def draw_scrubs(c: Canvas, look: Look) -> None:
    """Nurse uniform: a V neck with a darker trim and a name badge."""
    c.draw.polygon(c.points([(440, 596), (560, 596), (500, 700)]), fill=shade(look.skin, 0.95))
    c.draw.line(c.points([(435, 592), (500, 706), (565, 592)]), fill=look.shirt, width=c.s(16), joint="curve")
    c.draw.rounded_rectangle(c.box(345, 800, 62, 30), radius=c.s(6), fill=(250, 250, 250))
    c.draw.rectangle(c.box(345, 782, 62, 10), fill=(200, 60, 70))
    for row in range(2):
        y = 805 + row * 14
        c.draw.line(c.points([(305, y), (385 - row * 25, y)]), fill=(120, 120, 130), width=c.s(4))


def draw_stethoscope(c: Canvas) -> None:
    """Tubing around the neck and down both sides, a silver chest piece on the right."""
    tube = (48, 52, 60)
    left = bezier((452, 590), (405, 700), (430, 800))
    right = bezier((548, 590), (600, 690), (580, 800))
    c.draw.line(c.points(left), fill=tube, width=c.s(14), joint="curve")
    c.draw.line(c.points(right), fill=tube, width=c.s(14), joint="curve")
    c.draw.ellipse(c.box(430, 812, 16, 16), fill=(150, 154, 162))
    c.draw.ellipse(c.box(580, 826, 34, 34), fill=(176, 180, 188), outline=(110, 114, 122), width=c.s(5))
    c.draw.ellipse(c.box(580, 826, 18, 18), fill=(210, 214, 220))


def draw_hair_back(c: Canvas, look: Look) -> None:
    """Hair behind the head: a jaw-length bob or a bun on top."""
    if look.hair_style == "bob":
        c.draw.ellipse(c.box(500, 360, 160, 175), fill=look.hair)
        c.draw.rounded_rectangle(c.box(500, 450, 160, 80), radius=c.s(60), fill=look.hair)
    else:
        c.draw.ellipse(c.box(500, 205, 62, 55), fill=look.hair)
        c.draw.ellipse(c.box(500, 355, 140, 160), fill=look.hair)


def draw_head(c: Canvas, look: Look) -> None:
    for side in (-1, 1):
        c.draw.ellipse(c.box(500 + side * 120, 395, 22, 36), fill=shade(look.skin, 0.93))
    face = c.box(500, 375, 120, 152)
    c.draw.ellipse(face, fill=look.skin)
    # a faint shadow on each side of the face gives it volume
    for side in (-1, 1):
        cheek = c.box(500 + side * 118, 400, 26, 110)
        c.soft(
            shade(look.skin, 0.85),
            0.6,
            16,
            lambda d, a, box=cheek: d.ellipse(box, fill=a),
            clip=lambda d, a: d.ellipse(face, fill=a),
        )


def draw_hair_front(c: Canvas, look: Look) -> None:
    """Hair over the top of the head down to a curved hairline: a fringe swept
    to one side for the bob, a centre parting for hair tied back."""
    angles = (math.pi + i * math.pi / 40 for i in range(41))  # the upper half of the head, left to right
    crown = [(500 + 128 * math.cos(a), 372 + 158 * math.sin(a)) for a in angles]
    if look.hair_style == "bob":
        hairline = bezier((628, 372), (610, 290), (540, 282)) + bezier((540, 282), (430, 292), (372, 372))
    else:
        hairline = bezier((624, 372), (612, 268), (500, 264)) + bezier((500, 264), (388, 268), (376, 372))
    c.draw.polygon(c.points(crown + hairline), fill=look.hair)
    shine = shade(look.hair, 1.9)
    c.draw.arc(c.box(470, 290, 80, 60), 200, 250, fill=shine, width=c.s(4))


def draw_eyes(c: Canvas, look: Look) -> None:
    for cx in (455, 545):
        c.draw.ellipse(c.box(cx, 388, 27, 14), fill=(250, 250, 248))
        c.draw.ellipse(c.box(cx, 388, 12, 12), fill=look.iris)
        c.draw.ellipse(c.box(cx, 388, 6, 6), fill=(18, 14, 12))
        c.draw.ellipse(c.box(cx + 4, 384, 3, 3), fill=(255, 255, 255))
        c.draw.arc(c.box(cx, 390, 29, 17), 195, 345, fill=(40, 30, 28), width=c.s(5))
        c.draw.arc(c.box(cx, 382, 28, 16), 30, 150, fill=shade(look.skin, 0.8), width=c.s(2))
    brow = shade(look.hair, 1.2)
    for cx, tilt in ((452, -1), (548, 1)):
        pts = bezier((cx - 34, 356 + tilt * -2), (cx, 340), (cx + 34, 356 + tilt * 2), steps=20)
        c.draw.line(c.points(pts), fill=brow, width=c.s(8), joint="curve")


def draw_nose_and_mouth(c: Canvas, look: Look) -> None:
    nose = shade(look.skin, 0.78)
    c.draw.line(c.points(bezier((505, 400), (512, 430), (500, 448), steps=12)), fill=nose, width=c.s(3))
    c.draw.arc(c.box(500, 446, 18, 8), 20, 160, fill=nose, width=c.s(3))
    for cx in (430, 570):
        c.soft(shade(look.lips, 1.08), 0.3, 12, lambda d, a, x=cx: d.ellipse(c.box(x, 440, 34, 20), fill=a))
    c.draw.chord(c.box(500, 478, 38, 18), 0, 180, fill=shade(look.lips, 1.05))
    c.draw.arc(c.box(500, 474, 40, 14), 10, 170, fill=shade(look.lips, 0.75), width=c.s(4))
    c.draw.line(c.points([(462, 478), (538, 478)]), fill=shade(look.lips, 0.7), width=c.s(3))


def vignette(c: Canvas) -> None:
    """Darken the corners slightly so the eye goes to the face."""
    mask = Image.new("L", c.image.size, 0)
    ImageDraw.Draw(mask).ellipse(c.box(500, 470, 620, 620), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(c.s(120)))
    dark = c.image.point(lambda v: round(v * 0.9))
    c.image = Image.composite(c.image, dark, mask)


def draw_portrait(look: Look, size_px: int) -> Image.Image:
    c = Canvas(size_px * SUPERSAMPLE)
    draw_background(c, look)
    draw_hair_back(c, look)
    draw_body(c, look)
    draw_stethoscope(c)
    draw_head(c, look)
    draw_hair_front(c, look)
    draw_eyes(c, look)
    draw_nose_and_mouth(c, look)
    vignette(c)
    return c.image.resize((size_px, size_px), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets")
    parser.add_argument("--size-px", type=int, default=768)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for look in LOOKS:
        path = args.out / f"{look.name}.png"
        draw_portrait(look, args.size_px).save(path, optimize=True)
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
