"""Fuzzing the booted firmware's SunSpec server on the MicroPython binary (issue 12): 9,000 malformed or
random Modbus TCP frames and 1,000 RTU frames over a pty, from the generator the CPython fuzz test uses
(modbus_fuzz.make_pdu). Afterwards: no crash, no restarted task, every well-formed request answered as
before, and the heap back where it was. tools/bench/fuzz.py is the 110,000-frame version."""
import pytest
import serial

import ptybus
from modbus_fuzz import fuzz_rtu, fuzz_tcp, known_reads_rtu, known_reads_tcp, restarts, start_firmware

pytestmark = pytest.mark.mp

TCP_FRAMES = 9000
RTU_FRAMES = 1000
HEAP_SLACK = 16 * 1024  # log lines, config writes the fuzz made: bounded, never per frame


def test_fuzzed_tcp_and_rtu_frames_leave_the_firmware_serving_and_its_heap_bounded():
    bus = ptybus.PtyPair()
    fw = None
    try:
        fw = start_firmware(bus.fw)
        ser = serial.Serial(bus.peer, 115200, timeout=0)
        tcp_before = known_reads_tcp(fw.sunspec_port)
        rtu_before = known_reads_rtu(ser)
        assert tcp_before[0][:6] == b"\x03\x8c\x53\x75\x6e\x53"  # "SunS"
        assert rtu_before == tcp_before  # the same images on both transports
        # warm-up: one-off allocations (views of each read range, the ring log) before the baseline
        fuzz_tcp(fw.sunspec_port, 3000, seed=1)
        fuzz_rtu(ser, 300, seed=1)
        heap_before = fw.ctl("status", gc=True)["heap"]["alloc"]
        tcp = fuzz_tcp(fw.sunspec_port, TCP_FRAMES, seed=2)
        rtu = fuzz_rtu(ser, RTU_FRAMES, seed=2)
        assert fw.proc.poll() is None, fw.read_output()
        assert tcp["frames"] >= TCP_FRAMES and rtu["frames"] == RTU_FRAMES
        assert tcp["unanswered"] == 0 and tcp["wrong"] == 0, tcp
        assert tcp["answered"] > TCP_FRAMES // 2 and tcp["dropped"] > 100 and tcp["kept"] == 0, tcp
        assert rtu["bytes_back"] > 0, rtu
        assert known_reads_tcp(fw.sunspec_port) == tcp_before
        assert known_reads_rtu(ser) == rtu_before
        heap_after = fw.ctl("status", gc=True)["heap"]["alloc"]
        assert heap_after - heap_before < HEAP_SLACK, (heap_before, heap_after)
        n_restarts, errors = restarts(fw)
        assert n_restarts == 0 and not errors, errors
        ser.close()
    finally:
        if fw is not None:
            fw.stop()
            assert "Traceback" not in fw.read_output(), fw.read_output()
        bus.close()
