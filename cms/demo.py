"""Demo content for the public site: news, advisory-board updates, success stories, an About page and the member
directory, with the editorial groups and workflow. Pages are found by their slug, so running it again adds
nothing; new pages are published through revisions, as editors publish them.
"""

import io
from datetime import timedelta

from django.contrib.auth.models import Group
from django.core.files.images import ImageFile
from django.db import transaction
from django.utils import timezone
from wagtail.images import get_image_model
from wagtail.models import Page

from accounts.models import User
from cms.models import (
    BoardAction,
    BoardUpdateIndexPage,
    BoardUpdatePage,
    DirectoryPage,
    HomePage,
    NewsCategory,
    NewsIndexPage,
    NewsPage,
    StandardPage,
    SuccessStoryIndexPage,
    SuccessStoryPage,
)
from cms.permissions import EDITORS, MODERATORS, set_up_editorial_workflow
from membership.models import Organisation

# (title, colour, accent, alt text): generated pictures, so the demo needs no files of its own.
IMAGES = [
    ("Quayside at dusk", (11, 61, 92), (255, 209, 102), "Abstract picture in the network's blue and gold"),
    ("Circuit board", (20, 87, 127), (120, 200, 180), "Abstract picture in blue and green"),
    ("Teesside skyline", (7, 42, 64), (240, 120, 90), "Abstract picture in navy and coral"),
    ("Workshop", (60, 40, 110), (255, 209, 102), "Abstract picture in purple and gold"),
    ("Data centre", (15, 90, 70), (200, 230, 120), "Abstract picture in green"),
    ("Coast", (30, 100, 150), (230, 240, 250), "Abstract picture in sea blue and white"),
]

CATEGORIES = ["Funding", "Skills", "Member news", "Policy", "Community"]

# (slug, title, category, tags, days ago, author, introduction, paragraphs, quote or None, members only)
NEWS = [
    (
        "sunderland-software-centre-expands",
        "Sunderland Software Centre opens a second floor for scale-ups",
        "Member news",
        ["Sunderland", "scale-ups"],
        3,
        "Hannah Ridley",
        "Forty new desks and four meeting rooms open in January, with a discount for member organisations.",
        [
            "The Sunderland Software Centre is opening its second floor to growing tech firms from January, "
            "adding forty desks, four bookable meeting rooms and a shared hardware lab.",
            "Member organisations get 15% off the first year's rent and two free days a month in the meeting "
            "rooms. Tours run every Thursday afternoon until the end of the year.",
        ],
        ("Wearside has the talent; what growing firms told us they lacked was room to grow into.", "Centre manager"),
        False,
    ),
    (
        "tees-valley-digital-skills-fund",
        "£2.4m fund for digital skills opens across the Tees Valley",
        "Funding",
        ["skills", "Teesside", "funding"],
        9,
        "",
        "Employers can claim up to £20,000 towards training staff in software, data and cyber security.",
        [
            "A new £2.4m fund will pay up to half the cost of accredited training in software development, data "
            "and cyber security for employers based in the Tees Valley.",
            "Applications open on the first of next month. The network's skills team runs a drop-in session for "
            "members who want help with their bids.",
        ],
        None,
        False,
    ),
    (
        "newcastle-cyber-cluster-report",
        "Cyber security firms in the North East grew by a fifth last year",
        "Policy",
        ["cyber security", "research"],
        16,
        "Dr Sam Whitfield",
        "The region now has more than 140 cyber security firms, according to the annual cluster report.",
        [
            "The annual North East cyber cluster report counts 143 firms, up from 118, employing just over 3,000 "
            "people between them.",
            "Most growth came from small consultancies and managed security providers in Newcastle and Durham; "
            "the report calls for more degree apprenticeships to keep up with demand.",
        ],
        None,
        False,
    ),
    (
        "durham-ai-in-healthcare-pilot",
        "GP practices in County Durham trial AI triage built in the region",
        "Member news",
        ["AI", "health", "Durham"],
        23,
        "",
        "Twelve practices are trying a Durham start-up's assistant that routes requests to the right clinician.",
        [
            "Twelve GP practices across County Durham have begun a six-month pilot of an AI triage assistant "
            "built by a local health-tech start-up.",
            "The tool sorts online requests by urgency and suggests the right clinician; every suggestion is "
            "checked by practice staff before it is acted on.",
        ],
        ("We built it with the receptionists who use it, not for them.", "Founder, Durham Health Informatics"),
        False,
    ),
    (
        "code-club-volunteers-wanted",
        "Code clubs in Northumberland need 40 volunteers",
        "Community",
        ["volunteering", "young people", "Northumberland"],
        30,
        "Ellie Dobson",
        "After-school clubs in Blyth, Cramlington and Hexham are looking for people to help once a fortnight.",
        [
            "Code clubs in Blyth, Cramlington, Morpeth and Hexham are looking for forty volunteers from the tech "
            "sector to help run after-school sessions for 9 to 13 year olds.",
            "No teaching experience is needed; volunteers are paired with a teacher and get a short training session.",
        ],
        None,
        False,
    ),
    (
        "gateshead-quays-5g-testbed",
        "Gateshead Quays 5G testbed opens to member start-ups",
        "Member news",
        ["5G", "Gateshead", "start-ups"],
        38,
        "",
        "Start-ups can book free time on a private 5G network along the quayside to test connected products.",
        [
            "A private 5G network covering Gateshead Quays is now open for start-ups to test connected products, "
            "from delivery robots to event apps.",
            "Member start-ups can book up to ten days a quarter free of charge; the network team helps with set-up.",
        ],
        None,
        False,
    ),
    (
        "regional-salary-survey-2026",
        "Members' salary survey: what the region's tech roles pay",
        "Skills",
        ["salaries", "research"],
        45,
        "The membership team",
        "The full results of this year's salary survey, from 212 member organisations, for members only.",
        [
            "This year's survey covered 212 member organisations and 4,800 roles. Median pay for a mid-level "
            "software engineer in the region rose 6% to £47,500; data roles rose fastest.",
            "The full tables, by role, town and organisation size, are attached for members to download.",
        ],
        None,
        True,
    ),
    (
        "north-east-tech-awards-shortlist",
        "The North East Tech Awards shortlist is out",
        "Community",
        ["awards", "events"],
        52,
        "",
        "Sixty organisations and people are shortlisted across twelve categories; the winners are named in March.",
        [
            "The judges have shortlisted sixty organisations and people across twelve categories, from start-up of "
            "the year to digital inclusion champion.",
            "Winners will be announced at the awards dinner at the Baltic Centre in March. Members get a discount "
            "on tables.",
        ],
        None,
        False,
    ),
    (
        "middlesbrough-games-studio-funding",
        "Middlesbrough games studios win £600,000 for new titles",
        "Funding",
        ["games", "Teesside", "funding"],
        60,
        "Hannah Ridley",
        "Five studios in Middlesbrough share a games development fund for their next releases.",
        [
            "Five independent games studios in Middlesbrough will share £600,000 from a regional games fund to "
            "develop new titles over the next two years.",
            "The fund also pays for a shared QA and accessibility testing lab at Boho.",
        ],
        None,
        False,
    ),
    (
        "apprenticeship-levy-transfer",
        "Large members pledge £1m of apprenticeship levy to small firms",
        "Skills",
        ["apprenticeships", "skills"],
        67,
        "",
        "Eight large members will transfer unused levy so that small tech firms can take on apprentices.",
        [
            "Eight of the network's largest members have pledged to transfer £1m of unused apprenticeship levy to "
            "small tech firms in the region this year.",
            "Small members can apply through the network for funding towards software, data and infrastructure "
            "apprenticeships.",
        ],
        None,
        False,
    ),
]

# (slug, title, days ago, members only, introduction, attendees, topics, discussion, decisions, actions)
BOARD_UPDATES = [
    (
        "board-meeting-october",
        "Advisory board: October meeting",
        40,
        False,
        "The board reviewed the events programme and agreed priorities for next year's perks.",
        [
            "Dr Amina Yusuf, chair (Teesside Institute of Technology)",
            "Mark Jennings (Northern Ledger Bank)",
            "Sophie Allan (Cheviot Cyber)",
            "Rob Tait (Northumbria Coast Council)",
        ],
        ["Events programme: attendance and feedback", "Perks for small members", "Membership numbers"],
        "Attendance at networking events rose by a third on last year, with the best feedback for the smaller "
        "breakfast sessions outside Newcastle.",
        "<ul><li>Run at least four events a year in Teesside and four in County Durham.</li>"
        "<li>Prioritise perks that save small members money on software and training.</li></ul>",
        [
            ("Draft the spring events calendar", "Membership team", 30),
            ("Approach three software vendors", "Sophie Allan", 45),
        ],
    ),
    (
        "board-meeting-july",
        "Advisory board: July meeting",
        130,
        False,
        "The board agreed the network's response to the regional skills plan and welcomed two new members.",
        ["Dr Amina Yusuf, chair", "Mark Jennings", "Priya Shah (membership team)", "Gareth Lowe (Angel Games Studio)"],
        ["Regional skills plan", "New board members", "Success stories programme"],
        "The board discussed the draft regional skills plan and the gaps members reported in data and cyber roles.",
        "<ul><li>Respond to the skills plan consultation, asking for more degree apprenticeships.</li></ul>",
        [("Submit the consultation response", "Dr Amina Yusuf", 21)],
    ),
    (
        "board-meeting-budget-and-fees",
        "Advisory board: budget and membership fees",
        75,
        True,
        "Members-only: the board's discussion of next year's budget and membership fees.",
        ["Dr Amina Yusuf, chair", "Mark Jennings (treasurer)", "Sophie Allan", "Rob Tait", "Alex Morgan (director)"],
        ["Budget for next year", "Membership fees by tier", "Reserves policy"],
        "The treasurer presented a balanced budget with a small surplus set aside for the events programme.",
        "<ul><li>Hold fees for start-ups and charities at this year's level.</li>"
        "<li>Raise corporate fees by 3% from April.</li></ul>",
        [("Publish the new fee table", "Membership team", 14), ("Review the reserves policy", "Mark Jennings", 60)],
    ),
]

# (slug, title, organisation name, days ago, introduction, paragraphs, quote)
STORIES = [
    (
        "wearside-robotics-first-export-order",
        "Wearside Robotics lands its first export order",
        "Wearside Robotics",
        12,
        "A Sunderland start-up's inspection robots are heading to offshore wind farms in the Netherlands.",
        [
            "Wearside Robotics, a five-person start-up in Sunderland, has signed its first export contract: "
            "twelve inspection robots for offshore wind farms in the Netherlands.",
            "The team met their Dutch customer at a network trade event in Rotterdam last spring.",
        ],
        ("The network's trade mission paid for itself ten times over.", "Founder, Wearside Robotics"),
    ),
    (
        "tyne-analytics-manufacturing-ai",
        "Tyne Analytics helps a Washington factory cut waste by 18%",
        "Tyne Analytics",
        34,
        "Machine learning on production-line data saves a car parts maker £400,000 a year.",
        [
            "Tyne Analytics worked with a car parts maker in Washington to predict faults on its production line "
            "before they happen, cutting waste by 18%.",
            "The project started with a conversation at a network breakfast event.",
        ],
        None,
    ),
    (
        "cheviot-cyber-secures-councils",
        "Cheviot Cyber secures six councils' networks",
        "Cheviot Cyber",
        58,
        "A Newcastle cyber firm now runs round-the-clock monitoring for six local authorities.",
        [
            "Cheviot Cyber has won a contract to run security monitoring for six local authorities in the North "
            "East, creating twelve jobs at its Newcastle operations centre.",
        ],
        ("Keeping public services safe is work we are proud to do from the region.", "Managing director"),
    ),
    (
        "angel-games-studio-bafta",
        "Angel Games Studio's debut is nominated for a BAFTA",
        "Angel Games Studio",
        90,
        "A Gateshead studio's first console game is up for a BAFTA Games Award.",
        [
            "Angel Games Studio's debut console title has been nominated for a BAFTA Games Award, two years after "
            "the studio was founded in Gateshead with help from the network's start-up programme.",
        ],
        None,
    ),
    (
        "durham-health-informatics-nhs",
        "Durham Health Informatics signs with the NHS",
        "Durham Health Informatics",
        120,
        "A Durham health-tech start-up's triage tool will be offered to practices across the region.",
        [
            "Durham Health Informatics has signed a framework agreement that lets GP practices across the North "
            "East buy its triage assistant without a separate tender.",
        ],
        None,
    ),
]

ABOUT_PARAGRAPHS = [
    "North East Tech Network is the membership body for the region's tech sector: over a thousand organisations "
    "from Berwick to the Tees Valley, from two-person start-ups to global banks, universities and councils.",
    "We run events for networking, negotiate perks that save members money, and tell the stories of the "
    "region's successes. We are a not-for-profit, run by an advisory board of members.",
]


def _picture(colour: tuple, accent: tuple) -> io.BytesIO:
    from PIL import Image, ImageDraw

    width, height = 1200, 630
    picture = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(picture)
    for step in range(0, width, 8):
        shade = tuple(min(255, part + step // 24) for part in colour)
        draw.line([(step, 0), (step - 300, height)], fill=shade, width=8)
    draw.ellipse((820, 160, 1120, 460), outline=accent, width=18)
    draw.rectangle((80, 470, 520, 500), fill=accent)
    data = io.BytesIO()
    picture.save(data, "JPEG", quality=80)
    data.seek(0)
    return data


def seed_images() -> list:
    Image = get_image_model()
    images = []
    for title, colour, accent, alt in IMAGES:
        image = Image.objects.filter(title=title).first()
        if image is None:
            name = title.lower().replace(" ", "-") + ".jpg"
            image = Image(title=title, description=alt, file=ImageFile(_picture(colour, accent), name=name))
            image.save()
        images.append(image)
    return images


def _body(paragraphs: list[str], quote: tuple[str, str] | None = None, cta: bool = False) -> list[dict]:
    blocks = [{"type": "paragraph", "value": "".join(f"<p>{text}</p>" for text in paragraphs)}]
    if quote:
        blocks.append({"type": "quote", "value": {"quote": quote[0], "attribution": "", "role": quote[1]}})
    if cta:
        blocks.append(
            {
                "type": "call_to_action",
                "value": {
                    "heading": "Not a member yet?",
                    "text": "Your whole team gets the events, the perks and a place in the directory.",
                    "button_label": "Join the network",
                    "page": None,
                    "url": "/join/",
                },
            }
        )
    return blocks


def _publish(parent: Page, page: Page) -> Page:
    """Add ``page`` under ``parent`` unless a page with its slug is there; publish new pages as editors do."""
    existing = parent.get_children().filter(slug=page.slug).specific().first()
    if existing is not None:
        return existing
    page.live = False
    parent.add_child(instance=page)
    page.save_revision().publish()
    return page


def _index(home: HomePage, model, slug: str, title: str, introduction: str) -> Page:
    found = model.objects.child_of(home).first()
    return found or _publish(home, model(title=title, slug=slug, introduction=introduction))


@transaction.atomic
def seed_site() -> dict:
    """Create the site's demo pages and editorial roles; returns how many of each kind exist."""
    set_up_editorial_workflow()
    _seed_editors()
    home = HomePage.objects.get()
    images = seed_images()
    today = timezone.localdate()

    news_index = _index(
        home, NewsIndexPage, "news", "News", "What is happening in the North East's tech sector, and in the network."
    )
    categories = {name: NewsCategory.objects.get_or_create(name=name)[0] for name in CATEGORIES}
    for number, (slug, title, category, tags, days, author, intro, paragraphs, quote, members_only) in enumerate(NEWS):
        page = NewsPage(
            title=title,
            slug=slug,
            date=today - timedelta(days=days),
            author=author,
            category=categories[category],
            introduction=intro,
            listing_image=images[number % len(images)],
            body=_body(paragraphs, quote, cta=number % 3 == 0),
            members_only=members_only,
        )
        page.tags.add(*tags)
        _publish(news_index, page)

    boards = _index(
        home,
        BoardUpdateIndexPage,
        "advisory-board",
        "Advisory board",
        "What the members' advisory board discusses and decides at each meeting.",
    )
    for slug, title, days, members_only, intro, attendees, topics, discussion, decisions, actions in BOARD_UPDATES:
        meeting = today - timedelta(days=days)
        page = BoardUpdatePage(
            title=title,
            slug=slug,
            meeting_date=meeting,
            members_only=members_only,
            introduction=intro,
            attendees="\n".join(attendees),
            topics="\n".join(topics),
            body=_body([discussion]),
            decisions=decisions,
        )
        page.actions = [
            BoardAction(action=action, owner=owner, due_date=meeting + timedelta(days=due))
            for action, owner, due in actions
        ]
        _publish(boards, page)

    stories = _index(
        home,
        SuccessStoryIndexPage,
        "success-stories",
        "Success stories",
        "Celebrating what the region's tech organisations achieve.",
    )
    organisations = {o.name: o for o in Organisation.objects.filter(name__in=[story[2] for story in STORIES])}
    for number, (slug, title, name, days, intro, paragraphs, quote) in enumerate(STORIES):
        page = SuccessStoryPage(
            title=title,
            slug=slug,
            organisation=organisations.get(name),
            date=today - timedelta(days=days),
            introduction=intro,
            listing_image=images[(number + 2) % len(images)],
            body=_body(paragraphs, quote, cta=True),
        )
        _publish(stories, page)

    _publish(
        home,
        StandardPage(
            title="About the network",
            slug="about",
            introduction="Who we are, what we do for members, and how the network is run.",
            body=_body(ABOUT_PARAGRAPHS, cta=True),
        ),
    )
    _index(
        home,
        DirectoryPage,
        "directory",
        "Member directory",
        "The region's tech organisations that are members of the network. Each chose what its card shows.",
    )
    return {
        "news": NewsPage.objects.count(),
        "board_updates": BoardUpdatePage.objects.count(),
        "stories": SuccessStoryPage.objects.count(),
    }


def _seed_editors() -> None:
    """The demo's editor writes pages and submits them; its director (a superuser) also moderates."""
    for email, group in (("editor@netech.example", EDITORS), ("director@netech.example", MODERATORS)):
        user = User.objects.filter(email=email).first()
        if user is not None:
            user.groups.add(Group.objects.get(name=group))
