"""`disco verify`: the real excerpt against the authors' full md5 lists; corrupt and missing files."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from disco.data.openmic import open_dataset
from disco.data.verify import read_md5_list, verify_dataset
from disco.errors import DatasetError

KEY = "000046_3840"


def _cli(*argv: str) -> tuple[int, str]:
    from disco.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, buf.getvalue()


@pytest.fixture
def lists(official_lists: Path) -> dict[str, Path]:
    return {
        "audio": official_lists / "checksums-audio.csv",
        "vggish": official_lists / "checksums-vggish.csv",
    }


def test_official_lists_parse(lists: dict[str, Path]) -> None:
    for path in lists.values():
        md5s = read_md5_list(path)
        assert len(md5s) == 20000
    assert read_md5_list(lists["audio"])[KEY] == "c72d759c5347ecf30bf3783c7ae039cf"


def test_real_sample_matches_official_md5(openmic_sample: Path, lists: dict[str, Path]) -> None:
    ds = open_dataset(openmic_sample)
    reports = verify_dataset(ds, audio_md5=lists["audio"], vggish_md5=lists["vggish"], present_only=True)
    for kind in ("audio", "vggish"):
        r = reports[kind]
        assert (r.checked, r.ok, r.corrupt, r.missing, r.unlisted) == (1, 1, [], [], [])
        assert r.passed
    # without --present-only the excerpt lacks the other 19,999 clips
    full = verify_dataset(ds, audio_md5=lists["audio"])
    assert (
        len(full["audio"].missing) == 19999 and KEY not in full["audio"].missing and not full["audio"].passed
    )


def test_corrupt_and_missing_files(tmp_path: Path, openmic_sample: Path, lists: dict[str, Path]) -> None:
    root = tmp_path / "openmic-2018"
    shutil.copytree(openmic_sample, root)
    ogg = root / "audio" / "000" / f"{KEY}.ogg"
    data = bytearray(ogg.read_bytes())
    data[5000] ^= 0xFF  # one flipped byte
    ogg.write_bytes(bytes(data))
    (root / "vggish" / "000" / f"{KEY}.json").unlink()
    # A small list naming the real clip and one that is not there.
    audio_list = tmp_path / "audio.csv"
    audio_list.write_text(
        f",md5\n{KEY},c72d759c5347ecf30bf3783c7ae039cf\n000135_483840,cfdda045db86e2b52ac301a13ad91105\n"
    )
    reports = verify_dataset(
        open_dataset(root), audio_md5=audio_list, vggish_md5=lists["vggish"], present_only=False
    )
    audio = reports["audio"]
    assert [c["key"] for c in audio.corrupt] == [KEY] and audio.corrupt[0]["path"] == str(ogg)
    assert audio.corrupt[0]["actual"] != audio.corrupt[0]["expected"]
    assert audio.missing == ["000135_483840"]
    assert KEY in reports["vggish"].missing

    rc, out = _cli("verify", str(root), "--audio-md5", str(audio_list), "--json")
    doc = json.loads(out)
    assert rc == 1 and doc["passed"] is False and doc["audio"]["corrupt"][0]["key"] == KEY
    rc, out = _cli("verify", str(root), "--audio-md5", str(audio_list))
    assert rc == 1 and f"corrupt audio: {ogg}" in out and "missing audio: 000135_483840" in out


def test_default_lists_in_root_and_none(
    tmp_path: Path, openmic_sample: Path, lists: dict[str, Path], capsys
) -> None:
    root = tmp_path / "openmic-2018"
    shutil.copytree(openmic_sample, root)
    rc, _ = _cli("verify", str(root))
    assert rc == 2 and "no md5 list" in capsys.readouterr().err
    shutil.copy(lists["audio"], root / "checksums-audio.csv")
    rc, out = _cli("verify", str(root), "--present-only")
    assert rc == 0 and "OK" in out


def test_malformed_md5_list(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(",md5\n000046_3840,c72d759c5347ecf30bf3783c7ae039cf\n000135_483840,nothex\n")
    with pytest.raises(DatasetError, match="not an md5") as err:
        read_md5_list(bad)
    assert err.value.line == 3 and err.value.path == str(bad)
    bad.write_text(",md5\n../x,c72d759c5347ecf30bf3783c7ae039cf\n")
    with pytest.raises(DatasetError, match="bad sample key"):
        read_md5_list(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_md5_list(tmp_path / "absent.csv")
