"""`make firmware` (tools/firmware.py): every prerequisite is checked before anything is built, a missing one
stops it with what to install, and the builds it runs use the LoadPilot manifest. No MicroPython tree needed:
the make calls are recorded, not run."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def fwb(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("lp_firmware_build", os.path.join(ROOT, "tools", "firmware.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.calls = []
    monkeypatch.setattr(mod, "BUILD", str(tmp_path / "build"))
    monkeypatch.setattr(mod, "_run", lambda cmd, quiet: mod.calls.append(cmd))
    monkeypatch.setattr(mod, "check_multilib", lambda: None)
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.delenv("MICROPY_DIR", raising=False)
    return mod


def fake_tree(tmp_path):
    mp = tmp_path / "mp"
    for d in ("py", "ports/unix", "ports/esp32", "lib/micropython-lib", "lib/mbedtls"):
        (mp / d).mkdir(parents=True)
    (mp / "py" / "mkenv.mk").write_text("")
    (mp / "lib" / "micropython-lib" / "README.md").write_text("")
    (mp / "lib" / "mbedtls" / "README.md").write_text("")
    return str(mp)


def test_without_micropython_dir_it_says_what_to_get_and_builds_nothing(fwb, capsys):
    assert fwb.main(["--board", "unix_sim"]) == 2
    err = capsys.readouterr().err
    assert "MICROPY_DIR is not set" in err and "v1.28.0" in err and "submodules" in err
    assert fwb.calls == []


def test_a_tree_without_its_submodules_is_refused(fwb, tmp_path, capsys):
    mp = fake_tree(tmp_path)
    os.remove(os.path.join(mp, "lib", "mbedtls", "README.md"))
    assert fwb.main(["--board", "unix_sim", "--micropython-dir", mp]) == 2
    assert "mbedtls submodule" in capsys.readouterr().err and fwb.calls == []
    assert fwb.main(["--board", "unix_sim", "--micropython-dir", str(tmp_path)]) == 2
    assert "is not a MicroPython source tree" in capsys.readouterr().err


def test_an_esp32_board_without_esp_idf_stops_before_building_anything(fwb, tmp_path, capsys):
    assert fwb.main(["--board", "esp32_devkit", "--micropython-dir", fake_tree(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ESP-IDF" in err and "IDF_PATH" in err and "Nothing was built" in err
    assert fwb.calls == [] and not os.path.exists(fwb.BUILD)


def test_unix_sim_builds_the_32bit_unix_port_with_the_loadpilot_manifest(fwb, tmp_path, capsys):
    mp = fake_tree(tmp_path)
    assert fwb.main(["--board", "unix_sim", "--micropython-dir", mp]) == 0
    mpy_cross, unix = fwb.calls
    assert mpy_cross[:3] == ["make", "-C", os.path.join(mp, "mpy-cross")]
    assert unix[:3] == ["make", "-C", os.path.join(mp, "ports", "unix")]
    for var in ("MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0",
                "FROZEN_MANIFEST=" + os.path.join(ROOT, "boards", "manifest_unix.py")):
        assert var in unix
    assert "BUILD=" + os.path.join(fwb.BUILD, "unix32", "frozen") in unix
    assert "build/unix32/frozen/micropython" in capsys.readouterr().out.replace(fwb.BUILD, "build")


def test_with_esp_idf_the_esp32_image_uses_the_same_manifest(fwb, tmp_path, monkeypatch):
    idf = tmp_path / "idf"
    (idf / "bin").mkdir(parents=True)
    (idf / "bin" / "idf.py").write_text("#!/bin/sh\n")
    os.chmod(str(idf / "bin" / "idf.py"), 0o755)
    monkeypatch.setenv("IDF_PATH", str(idf))
    monkeypatch.setenv("PATH", str(idf / "bin") + os.pathsep + os.environ["PATH"])
    assert fwb.main(["--board", "esp32s3_psram", "--micropython-dir", fake_tree(tmp_path)]) == 0
    esp = fwb.calls[-1]
    assert "BOARD=ESP32_GENERIC_S3" in esp and "BOARD_VARIANT=SPIRAM_OCT" in esp
    assert "FROZEN_MANIFEST=" + os.path.join(ROOT, "boards", "manifest_esp32.py") in esp


def test_the_manifests_freeze_the_package_and_main():
    text = open(os.path.join(ROOT, "boards", "manifest.py")).read()
    assert 'package("loadpilot", base_path="../firmware")' in text
    assert 'module("main.py", base_path="../firmware")' in text
    for port, base in (("unix", "variants/standard/manifest.py"), ("esp32", "boards/manifest.py")):
        t = open(os.path.join(ROOT, "boards", "manifest_%s.py" % port)).read()
        assert '"$(PORT_DIR)/%s"' % base in t and 'include("manifest.py")' in t


def _fake_idf(tmp_path, monkeypatch):
    idf = tmp_path / "idf"
    (idf / "bin").mkdir(parents=True)
    (idf / "bin" / "idf.py").write_text("#!/bin/sh\n")
    os.chmod(str(idf / "bin" / "idf.py"), 0o755)
    monkeypatch.setenv("IDF_PATH", str(idf))
    monkeypatch.setenv("PATH", str(idf / "bin") + os.pathsep + os.environ["PATH"])


def test_esp32_devkit_builds_from_its_own_board_definition_with_more_lwip_sockets(fwb, tmp_path, monkeypatch):
    _fake_idf(tmp_path, monkeypatch)
    assert fwb.main(["--board", "esp32_devkit", "--micropython-dir", fake_tree(tmp_path)]) == 0
    esp = fwb.calls[-1]
    own = os.path.join(ROOT, "boards", "esp32_devkit")
    assert "BOARD_DIR=" + own in esp and not [a for a in esp if a.startswith("BOARD=")]
    assert "FROZEN_MANIFEST=" + os.path.join(ROOT, "boards", "manifest_esp32.py") in esp
    # the stock ESP32_GENERIC settings first, our fragment last (its values win), and it raises the sockets
    cmake = open(os.path.join(own, "mpconfigboard.cmake")).read()
    lines = [ln.strip() for ln in cmake.splitlines() if ln.strip().startswith(("boards/", "${"))]
    assert lines == ["boards/sdkconfig.base", "boards/sdkconfig.ble", "${MICROPY_BOARD_DIR}/sdkconfig.loadpilot"]
    frag = os.path.join(own, "sdkconfig.loadpilot")
    assert fwb.sdkconfig_value(frag, "CONFIG_LWIP_MAX_SOCKETS") == "16"
    assert fwb.load_board("esp32_devkit")["sockets"] == 16


def test_a_board_file_whose_sockets_differ_from_the_image_is_refused_before_building(fwb, tmp_path, monkeypatch,
                                                                                     capsys):
    _fake_idf(tmp_path, monkeypatch)
    real = fwb.load_board
    monkeypatch.setattr(fwb, "load_board", lambda name: dict(real(name), sockets=12))
    assert fwb.main(["--board", "esp32_devkit", "--micropython-dir", fake_tree(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert '"sockets": 12' in err and "CONFIG_LWIP_MAX_SOCKETS=16" in err and fwb.calls == []
    # a stock board definition gets ESP-IDF's default: its board file must say 10
    assert fwb.main(["--board", "esp32s3_psram", "--micropython-dir", fake_tree(tmp_path / "b")]) == 2
    assert "CONFIG_LWIP_MAX_SOCKETS=10" in capsys.readouterr().err and fwb.calls == []


def test_stock_boards_keep_esp_idfs_default_sockets(fwb):
    for name in ("esp32s3_psram", "esp32_wrover"):
        assert fwb.board_dir(name) is None
        assert fwb.load_board(name)["sockets"] == fwb.ESP_IDF_SOCKETS == 10
