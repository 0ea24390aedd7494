"""Our Modbus TCP server on the MicroPython binary, driven by pymodbus, micropython-modbus and raw sockets."""
import asyncio
import random
import socket
import struct
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient

import firmware_proc
from modbus_peers import (PEERS, ServerApp, diag_u16, heap_collected, heap_now, is_closed, mbap, mp_env, read_pdu,
                          recv_frame, request, wait_until)

pytestmark = pytest.mark.mp


@pytest.fixture(scope="module")
def server():
    app = ServerApp(max_clients=4).start()
    yield app
    out = app.stop()
    assert "Traceback" not in out, out


def pm_client(server):
    c = ModbusTcpClient("127.0.0.1", port=server.port, timeout=5, retries=0)
    assert c.connect()
    return c


def test_pymodbus_reads_and_writes(server):
    c = pm_client(server)
    try:
        r = c.read_holding_registers(10, count=5, device_id=1)
        assert r.registers == [10, 11, 12, 13, 14]
        r = c.read_input_registers(975, count=125, device_id=1)
        assert r.registers == list(range(975, 1100))
        assert not c.write_register(20, 0xBEEF, device_id=1).isError()
        assert not c.write_registers(30, [7, 8, 9], device_id=1).isError()
        assert c.read_holding_registers(20, count=12, device_id=1).registers == \
            [0xBEEF] + list(range(21, 30)) + [7, 8]
        assert c.read_holding_registers(32, count=1, device_id=1).registers == [9]
        # second unit with its own map, and a validation hook
        assert not c.write_register(40005, 1000, device_id=2).isError()
        assert c.read_holding_registers(40005, count=1, device_id=2).registers == [1000]
    finally:
        c.close()


def test_exception_codes(server):
    c = pm_client(server)
    try:
        def code(r):
            assert r.isError()
            return r.exception_code

        assert code(c.read_holding_registers(1095, count=10, device_id=1)) == 2      # past the image
        assert code(c.read_input_registers(40000, count=1, device_id=2)) == 1        # FC4 not offered
        assert code(c.read_coils(0, count=1, device_id=1)) == 1                      # no coils here
        assert code(c.write_registers(1005, [1], device_id=1)) == 2                  # read-only register
        assert code(c.write_register(40001, 1001, device_id=2)) == 3                 # refused by on_write
        assert code(c.read_holding_registers(0, count=1, device_id=99)) == 0x0B      # unknown unit
        assert c.read_holding_registers(40001, count=1, device_id=2).registers == [0]  # nothing changed
        assert c.read_holding_registers(1005, count=1, device_id=1).registers == [1005]
    finally:
        c.close()
    # quantities pymodbus would not send: raw frames
    with server.connect() as s:
        assert request(s, 1, read_pdu(3, 0, 126)) == b"\x83\x03"
        assert request(s, 1, read_pdu(3, 0, 0)) == b"\x83\x03"
        assert request(s, 1, struct.pack(">BHHB", 16, 0, 124, 248) + bytes(240)) == b"\x90\x03"
        assert request(s, 1, struct.pack(">BHHB", 16, 0, 2, 3) + bytes(3)) == b"\x90\x03"
        assert request(s, 1, b"\x2b\x0e\x01\x00") == b"\xab\x01"
        assert request(s, 1, read_pdu(3, 0, 1)) == b"\x03\x02\x00\x00"


def test_four_concurrent_clients():
    app = ServerApp(max_clients=4).start()
    try:
        async def run():
            clients = [AsyncModbusTcpClient("127.0.0.1", port=app.port, timeout=5, retries=0) for _ in range(4)]
            for cl in clients:
                assert await cl.connect()

            async def work(cl, k):
                for i in range(20):
                    addr = (k * 100 + i * 7) % 1000
                    r = await cl.read_holding_registers(addr, count=50, device_id=1)
                    assert r.registers == list(range(addr, addr + 50))
            await asyncio.gather(*(work(cl, k) for k, cl in enumerate(clients)))
            for cl in clients:
                cl.close()
        asyncio.run(run())
    finally:
        assert "Traceback" not in app.stop()


def test_full_server_evicts_the_longest_idle_client_for_a_new_one():
    app = ServerApp(max_clients=4).start()
    try:
        socks = [app.connect() for _ in range(4)]
        for i, s in enumerate(socks):
            assert request(s, 1, read_pdu(3, i, 1)) == struct.pack(">BBH", 3, 2, i)
        for s in socks[1:]:  # socks[0] is now the one idle the longest, though it connected no earlier
            assert request(s, 1, read_pdu(3, 9, 1)) == b"\x03\x02\x00\x09"
        fifth = app.connect()
        assert request(fifth, 1, read_pdu(3, 5, 1)) == b"\x03\x02\x00\x05"
        assert is_closed(socks[0])
        for s in socks[1:]:
            assert request(s, 1, read_pdu(3, 7, 1)) == b"\x03\x02\x00\x07"
        # next in line: the fifth, whose one request came before the others' last ones
        sixth = app.connect()
        assert request(sixth, 1, read_pdu(3, 6, 1)) == b"\x03\x02\x00\x06"
        assert is_closed(fifth)
        for s in socks[1:]:
            assert request(s, 1, read_pdu(3, 8, 1)) == b"\x03\x02\x00\x08"
        assert diag_u16(sixth, 8) == 2  # evicted counter
        for s in socks + [fifth, sixth]:
            s.close()
    finally:
        assert "Traceback" not in app.stop()


def test_silent_connections_hold_no_slot_and_the_oldest_waiting_ones_are_closed():
    app = ServerApp(max_clients=2).start()  # and up to 2 connections wait for their first byte
    try:
        talkers = [app.connect() for _ in range(2)]
        for s in talkers:
            assert request(s, 1, read_pdu(3, 4, 1)) == b"\x03\x02\x00\x04"
        silent = []
        for _ in range(10):
            silent.append(app.connect())
            time.sleep(0.02)  # in order of arrival
        for s in silent[:8]:  # pushed out by newer silent ones
            assert is_closed(s)
        # every slot still belongs to a talker; a newcomer with a request evicts the longest-idle talker
        assert request(talkers[1], 1, read_pdu(3, 5, 1)) == b"\x03\x02\x00\x05"
        master = app.connect()
        assert request(master, 1, read_pdu(3, 6, 1)) == b"\x03\x02\x00\x06"
        assert is_closed(talkers[0])
        # a waiting silent connection that starts a request gets served too
        assert request(silent[9], 1, read_pdu(3, 7, 1)) == b"\x03\x02\x00\x07"
        for s in talkers + silent + [master]:
            s.close()
    finally:
        assert "Traceback" not in app.stop()


def test_bytes_without_a_complete_request_neither_keep_a_slot_nor_count_as_activity():
    app = ServerApp(max_clients=2, frame_ms=800).start()
    try:
        # a slowloris socket: one byte at a time of a frame that is never complete
        slow = app.connect()
        frame = mbap(1, 1, read_pdu(3, 0, 1), length=200)
        sent = 0
        t0 = time.monotonic()
        while not is_closed(slow, timeout=0.2):
            assert time.monotonic() - t0 < 10, "a trickled frame held its socket for 10 s"
            try:
                slow.sendall(frame[sent % len(frame):sent % len(frame) + 1])
            except OSError:
                break
            sent += 1
        assert sent >= 2  # it did trickle before the deadline closed it
        # trickling bytes do not make a socket look busy: a new client evicts it before a silent one
        # that has completed a request more recently
        slow = app.connect()
        time.sleep(0.05)
        talker = app.connect()
        assert request(talker, 1, read_pdu(3, 1, 1)) == b"\x03\x02\x00\x01"
        for k in range(3):  # slow's last byte is now more recent than talker's request
            slow.sendall(b"\x00")
            time.sleep(0.05)
        newcomer = app.connect()
        assert request(newcomer, 1, read_pdu(3, 2, 1)) == b"\x03\x02\x00\x02"
        assert is_closed(slow)
        assert request(talker, 1, read_pdu(3, 3, 1)) == b"\x03\x02\x00\x03"
        assert diag_u16(talker, 9) >= 1  # closed for an overdue frame
        for s in (slow, talker, newcomer):
            s.close()
    finally:
        assert "Traceback" not in app.stop()


def _reads_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return request(s, 1, read_pdu(3, 1, 1)) == b"\x03\x02\x00\x01"
    except (OSError, EOFError):
        return False


def test_async_handler_is_awaited_without_holding_other_clients(server):
    async def run():
        slow = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=5, retries=0)
        fast = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=5, retries=0)
        assert await slow.connect() and await fast.connect()
        try:
            async def fast_reads():
                done = 0
                for i in range(10):
                    r = await fast.read_holding_registers(400 + i, count=1, device_id=1)
                    assert r.registers == [400 + i]
                    done += 1
                return done
            slow_r, n_fast = await asyncio.gather(slow.read_holding_registers(300, count=3, device_id=3),
                                                  fast_reads())
            assert slow_r.registers == [300, 301, 302] and n_fast == 10
            r = await slow.read_holding_registers(0xFFFF, count=1, device_id=3)
            assert r.isError() and r.exception_code == 4  # handler raised: device failure
        finally:
            slow.close()
            fast.close()
    asyncio.run(run())


def test_pipelined_and_split_frames(server):
    with server.connect() as s:
        burst = b"".join(mbap(100 + i, 1, read_pdu(3, 200 + i * 10, 3)) for i in range(6))
        s.sendall(burst)
        for i in range(6):
            tid, unit, pdu = recv_frame(s)
            assert tid == 100 + i and unit == 1
            assert pdu == b"\x03\x06" + struct.pack(">HHH", 200 + i * 10, 201 + i * 10, 202 + i * 10)
        # one frame in pieces, the last piece carrying the start of the next frame
        f1 = mbap(7, 1, read_pdu(4, 500, 2))
        f2 = mbap(8, 1, read_pdu(4, 600, 1))
        for piece in (f1[:3], f1[3:8], f1[8:] + f2[:4], f2[4:]):
            s.sendall(piece)
            time.sleep(0.03)
        assert recv_frame(s) == (7, 1, b"\x04\x04" + struct.pack(">HH", 500, 501))
        assert recv_frame(s) == (8, 1, b"\x04\x02" + struct.pack(">H", 600))


@pytest.mark.parametrize("frame", [
    mbap(1, 1, read_pdu(3, 0, 1), proto=1),       # not Modbus
    mbap(1, 1, read_pdu(3, 0, 1), length=1),      # too short to hold a unit and a function code
    mbap(1, 1, read_pdu(3, 0, 1), length=300),    # longer than any PDU
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_broken_framing_drops_connection_and_server_keeps_serving(server, frame):
    with server.connect() as s:
        s.sendall(frame)
        assert is_closed(s)
    assert _reads_ok(server.port)


def test_lying_length_gets_exception_and_server_keeps_serving(server):
    with server.connect() as s:
        # length says 7 (unit + 6 bytes) for a 5-byte read PDU: a malformed PDU, answered with 03
        s.sendall(mbap(5, 1, read_pdu(3, 0, 1) + b"\x00", length=7))
        assert recv_frame(s) == (5, 1, b"\x83\x03")
        assert request(s, 1, read_pdu(3, 2, 1), tid=6) == b"\x03\x02\x00\x02"
        # length promising more than arrives: no answer, the connection just waits for the rest
        s.sendall(mbap(9, 1, read_pdu(3, 0, 1), length=20))
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1)
    assert _reads_ok(server.port)


def test_idle_client_is_disconnected():
    app = ServerApp(idle_ms=300).start()
    try:
        with app.connect() as s:
            assert request(s, 1, read_pdu(3, 0, 1)) == b"\x03\x02\x00\x00"
            t0 = time.monotonic()
            assert is_closed(s, timeout=10)
            assert time.monotonic() - t0 >= 0.25
    finally:
        assert "Traceback" not in app.stop()


def test_reads_allocate_nothing_on_the_server(server):
    with server.connect() as s:
        frame = mbap(1, 1, read_pdu(3, 100, 125))
        for _ in range(50):  # warm-up: cached views, counters
            s.sendall(frame)
            recv_frame(s)
        heap_now(s)
        heap_now(s)
        before = heap_now(s)
        for _ in range(500):
            s.sendall(frame)
            tid, unit, pdu = recv_frame(s)
            assert len(pdu) == 252
        after = heap_now(s)
        assert after - before == 0


def test_random_frames_against_real_server_heap_does_not_grow(server):
    rnd = random.Random(1234)
    # every slot serves once first: a slot's buffers are allocated at its first connection and kept (bounded
    # by max_clients), so what is measured below is growth per frame and per connection, not that
    socks = [server.connect() for _ in range(4)]
    for s in socks:
        assert request(s, 1, read_pdu(3, 999, 1)) == b"\x03\x02\x03\xe7"
    for s in socks:
        s.close()
    with server.connect() as s:
        base = heap_collected(s)
    answered = dropped = 0
    s = server.connect()
    fresh = True
    for i in range(3000):
        kind = rnd.random()
        if kind < 0.6:  # well-framed, random PDU
            pdu = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 20)))
            if rnd.random() < 0.5:
                pdu = bytes([rnd.choice((1, 2, 3, 4, 5, 6, 15, 16))]) + pdu[1:]
            frame = mbap(i & 0xFFFF, rnd.choice((1, 2, 9, 247)), pdu)
            deadline = time.monotonic() + 15
            while True:
                try:
                    s.sendall(frame)
                    tid, _, rpdu = recv_frame(s)
                    break
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    # refused: all slots still held by dropped connections the server has not polled yet
                    assert fresh, "server closed a connection that was being served"
                    assert time.monotonic() < deadline, "no free client slot for 15 s"
                    s.close()
                    time.sleep(0.01)
                    s = server.connect()
            fresh = False
            assert tid == i & 0xFFFF and rpdu[0] & 0x7F == pdu[0] & 0x7F
            answered += 1
        else:  # garbage header: dropped (or waited on), then reconnect
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(7, 40))))
            s.close()
            s = server.connect()
            fresh = True
            dropped += 1
    s.close()
    assert answered > 1500 and dropped > 1000
    with server.connect() as s:
        assert request(s, 1, read_pdu(3, 999, 1)) == b"\x03\x02\x03\xe7"
        assert wait_until(lambda: heap_collected(s) <= base + 1024)
    assert server.alive()


def test_micropython_modbus_client_against_our_server(server):
    code = """
from umodbus.tcp import TCP
m = TCP(slave_ip='127.0.0.1', slave_port=%d, timeout=5)
print('R', list(m.read_holding_registers(slave_addr=1, starting_addr=50, register_qty=4, signed=False)))
print('W', m.write_single_register(slave_addr=1, register_address=60, register_value=4242, signed=False))
print('M', m.write_multiple_registers(slave_addr=1, starting_address=61, register_values=[1, 2, 3], signed=False))
print('I', list(m.read_input_registers(slave_addr=1, starting_addr=60, register_qty=4, signed=False)))
try:
    m.read_holding_registers(slave_addr=1, starting_addr=1099, register_qty=2)
except Exception as e:
    print('E', type(e).__name__, e.args)
""" % server.port
    rc, out = firmware_proc.run_snippet(code, env=mp_env([PEERS]))
    assert rc == 0, out
    assert "R [50, 51, 52, 53]" in out
    assert "W True" in out and "M True" in out
    assert "I [4242, 1, 2, 3]" in out
    assert "E ValueError ('slave returned exception code: 131',)" in out, out  # 0x83: exception to FC3
