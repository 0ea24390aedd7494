from loadpilot.evse.effective import Limits


def test_hardware_limit_alone():
    lim = Limits(32000)
    assert lim.compute() == 32000 and lim.reason_name() == "hardware"


def test_each_source_can_be_the_limit():
    for field, name in (("cable_ma", "cable"), ("fixed_ma", "fixed"), ("modbus_ma", "modbus"),
                        ("manager_ma", "manager"), ("ocpp_ma", "ocpp")):
        lim = Limits(32000)
        lim.cable_ma = 20000 if field != "cable_ma" else 13000
        for f in ("fixed_ma", "modbus_ma", "manager_ma", "ocpp_ma"):
            if f != field:
                setattr(lim, f, 25000)
        if field != "cable_ma":
            setattr(lim, field, 10000)
        assert lim.compute() == (13000 if field == "cable_ma" else 10000)
        assert lim.reason_name() == name
        assert lim.view()["reason"] == name


def test_smallest_wins_and_ties_go_to_the_earlier_source():
    lim = Limits(16000)
    lim.cable_ma = 32000
    lim.manager_ma = 16000
    assert lim.compute() == 16000 and lim.reason_name() == "hardware"
    lim.manager_ma = 8000
    lim.ocpp_ma = 8000
    assert lim.compute() == 8000 and lim.reason_name() == "manager"


def test_no_cable_means_zero_unless_fixed_current_names_the_cable():
    lim = Limits(32000)
    lim.cable_ma = 0
    assert lim.compute() == 0 and lim.reason_name() == "cable"
    lim.fixed_ma = 16000  # tethered cable: PP codes nothing, fixed_current says what the cable carries
    assert lim.compute() == 16000 and lim.reason_name() == "fixed"


def test_fixed_current_cannot_exceed_a_coded_cable():
    lim = Limits(32000)
    lim.cable_ma = 13000
    lim.fixed_ma = 32000
    assert lim.compute() == 13000 and lim.reason_name() == "cable"
