import pytest

from bmfleet.api.shapes import ShapeError, format_shapes, parse_shape_string, short_text, validate_shapes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1,3,300,300],[1,10]", [[1, 3, 300, 300], [1, 10]]),
        ("[4,3,300,300]", [[4, 3, 300, 300]]),
        (" [1, 3, 224, 224] , [1,10] ", [[1, 3, 224, 224], [1, 10]]),
        ("[7]", [[7]]),
    ],
)
def test_seed_string_form_is_parsed(text, expected):
    assert parse_shape_string(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "[1,3,0,300]",
        "[1,-3,300]",
        "[1,3,300,300]]",
        "1,3,300,300",
        "[1,3,300,300][1,10]",
        "[1,3.5]",
        "[1,,3]",
        "[a,b]",
        "[1,3,300,300],",
    ],
)
def test_malformed_strings_are_refused_with_the_text(text):
    with pytest.raises(ShapeError) as err:
        parse_shape_string(text)
    assert repr(text) in str(err.value)


def test_round_trip_to_bmnetu_form():
    shapes = [[1, 3, 300, 300], [1, 10]]
    assert format_shapes(shapes) == "[1,3,300,300],[1,10]"
    assert parse_shape_string(format_shapes(shapes)) == shapes
    assert short_text(shapes) == "1x3x300x300+1x10"


def test_list_form_checks_dimensions():
    assert validate_shapes([[1, 2]]) == [[1, 2]]
    with pytest.raises(ShapeError, match="dimension 1 is 0"):
        validate_shapes([[1, 0]])
    with pytest.raises(ShapeError, match="no dimensions"):
        validate_shapes([[]])
    with pytest.raises(ShapeError, match="at least one"):
        validate_shapes([])
