"""Render resources/icons/speechint.svg to the PNG sizes desktops ask for, plus .ico and .icns.

Run once after editing the SVG (``python packaging/make_icons.py``); the outputs are committed so
a build needs no rendering step. Qt renders offscreen, so no display is needed.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(data)


def ico(pngs: dict[int, bytes]) -> bytes:
    """A multi-size Windows .ico whose entries are PNGs (valid since Windows Vista)."""
    sizes = [s for s in SIZES if s <= 256]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        data = pngs[size]
        dim = 0 if size == 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset + len(blobs))
        blobs += data
    return header + entries + blobs


def icns(pngs: dict[int, bytes]) -> bytes:
    """A macOS .icns with PNG entries (icp4/icp5/icp6/ic07/ic08/ic09 = 16..512 px)."""
    types = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}
    body = b"".join(t + struct.pack(">I", 8 + len(pngs[s])) + pngs[s] for s, t in types.items())
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "speechint.svg"))
    if not renderer.isValid():
        print(f"{ICONS / 'speechint.svg'}: not a valid SVG", file=sys.stderr)
        return 1
    images = {size: render(renderer, size) for size in SIZES}
    for size, image in images.items():
        if not image.save(str(ICONS / f"speechint-{size}.png")):
            print(f"could not write speechint-{size}.png", file=sys.stderr)
            return 1
    pngs = {size: png_bytes(image) for size, image in images.items()}
    (ICONS / "speechint.ico").write_bytes(ico(pngs))
    (ICONS / "speechint.icns").write_bytes(icns(pngs))
    print(f"wrote {len(images)} PNGs, speechint.ico and speechint.icns to {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
