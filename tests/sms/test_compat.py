"""The old SMPP paths of the SMS codecs still give the same objects."""
from appliance.sms import segment, text, udh


def test_old_paths_reexport_the_codecs():
    """Branches that still import C{appliance.smpp.text} and its siblings get
    the very functions and classes of C{appliance.sms}, every public name."""
    from appliance.smpp import segment as old_segment
    from appliance.smpp import text as old_text
    from appliance.smpp import udh as old_udh
    for new, old in ((text, old_text), (segment, old_segment),
                     (udh, old_udh)):
        assert old.__all__ == new.__all__
        for name in new.__all__:
            assert getattr(old, name) is getattr(new, name)
