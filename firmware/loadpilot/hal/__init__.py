# The hardware layer: the only package that imports machine, network or esp32.
#
# load(board) returns a Hal for the board file. Every implementation offers the same small surface:
#   hal.uart(name, baud, bits, parity, stop) -> Uart: write(buf), tx_done(), readinto(buf) -> n (never
#       blocks, 0 when nothing is there), any(), set_de(v), char_us (time of one character on the wire)
#   hal.output(name) -> Output: value(v=None)
#   hal.input(name, handler=None) -> Input: value(); handler(pin) is called on every edge (an IRQ on ESP32:
#       keep it short and allocation-free)
#   hal.pwm(name) -> Pwm: duty_cpct(d) with d in 0.01 % steps (0..10000), freq_hz
#   hal.adc(name) -> Adc: read_mv() at the input of the board's divider (board scale/offset applied)
#   hal.sample_cp(adc, low_adc, pwm_on, out) -> the CP line's high and low half in mV into out[0], out[1]
#       (a real board samples a burst over one PWM period; the virtual board reads what the virtual EV set)
#   hal.watchdog(timeout_ms) -> object with feed()
#   hal.fs_root ("" means the current directory), hal.network() -> (connected, ip), hal.reset()
#   hal.ctl_address() -> (host, port) or None; hal.serve_ctl(handlers) -> coroutine serving the host-side
#       control socket (unix only; the ESP32 HAL returns None from ctl_address)
# The RS485 helper send() below is shared: driver enable high, write, wait for the last stop bit, enable low.
import asyncio


async def rs485_send(uart, buf):
    uart.set_de(1)
    uart.write(buf)
    while not uart.tx_done():
        await asyncio.sleep_ms(0)
    uart.set_de(0)


def load(board, fs_root=""):
    if board["hal"] == "esp32":
        from loadpilot.hal import esp32 as impl
    else:
        from loadpilot.hal import unix as impl
    return impl.Hal(board, fs_root)
