"""The scripted agent addresses the user by first name only while the user lets it: the
"call me by my first name" then "keep it formal" preference (behaviours.PREFERENCES) is
honoured from the turn it is stated on."""

from __future__ import annotations

from writ_async.conversation.messages import AssistantMessage, UserMessage
from writ_async.participants.scripted.reading import first_name_ok


def _user(text: str) -> UserMessage:
    return UserMessage(content=text)


def test_the_user_decides_whether_they_are_called_by_first_name() -> None:
    hello = AssistantMessage(content="Hi! How can I help you today?")
    assert first_name_ok([hello, _user("I need to cancel a trip.")])
    asked = [hello, _user("Cancel my trip. Please call me by my first name.")]
    assert first_name_ok(asked)
    formal = [*asked, _user("Actually, on second thought, please keep it formal instead "
                            "of using my first name.")]
    assert not first_name_ok(formal)
    # Giving the name is not asking to be called by it.
    assert not first_name_ok([*formal, _user("My first name is Maya, last name Haddad.")])
    assert first_name_ok([*formal, _user("Fine, you can call me by my first name.")])
    assert not first_name_ok([hello, _user("Don't call me by my first name, please.")])
