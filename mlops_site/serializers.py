"""What every app's API serializers share: the strict input serializer, JSON number fields, and `validated`."""

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo (`metric` for `metrics`) is a 400, not silently dropped."""

    def validate(self, attrs):
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return attrs


class JSONNumber(serializers.FloatField):
    """A JSON number in (not a bool, which Python counts as 1, not text, not NaN or infinity), and out as it is
    stored: a whole number stays one (a threshold of 0 is answered 0, not 0.0)."""

    def to_internal_value(self, data):
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)

    def to_representation(self, value):
        return value


class JSONInteger(serializers.IntegerField):
    """A JSON whole number: not a bool, not text ("4"), not a float (4.0)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """The validated data of `data`, or a 400 in the one error shape naming each bad field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
