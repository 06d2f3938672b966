"""Vocabulary for the retail generator: product types, names, places.

Plain data, chosen to look like an online general store of the kind tau2-bench's retail
domain models (product types with a few option dimensions each, US customers). Every
product type has at least six option combinations so that it can have several variants.
"""

from __future__ import annotations

from typing import NamedTuple


class ProductType(NamedTuple):
    name: str
    price_range: tuple[float, float]
    options: dict[str, tuple[str, ...]]


COLORS = ("black", "white", "blue", "red", "green", "grey")

PRODUCT_TYPES: tuple[ProductType, ...] = (
    ProductType("T-Shirt", (18.0, 32.0), {
        "color": ("black", "white", "navy", "red"), "size": ("S", "M", "L", "XL"),
        "fit": ("regular", "slim")}),
    ProductType("Hoodie", (45.0, 70.0), {
        "color": ("black", "grey", "olive"), "size": ("S", "M", "L", "XL"),
        "lining": ("fleece", "cotton")}),
    ProductType("Rain Jacket", (90.0, 140.0), {
        "color": ("yellow", "navy", "black"), "size": ("S", "M", "L", "XL"),
        "hood": ("fixed", "packable")}),
    ProductType("Trail Shoes", (110.0, 150.0), {
        "size": ("7", "8", "9", "10", "11"), "color": ("black", "orange", "teal"),
        "width": ("regular", "wide")}),
    ProductType("Ankle Boots", (130.0, 190.0), {
        "size": ("6", "7", "8", "9", "10"), "material": ("suede", "leather"),
        "color": ("tan", "black")}),
    ProductType("Wool Socks", (12.0, 20.0), {
        "size": ("S", "M", "L"), "cushion": ("light", "medium", "heavy"),
        "pack": ("3-pack", "6-pack")}),
    ProductType("Baseball Cap", (20.0, 35.0), {
        "color": COLORS[:4], "closure": ("snapback", "strapback", "fitted")}),
    ProductType("Leather Wallet", (40.0, 85.0), {
        "style": ("bifold", "trifold", "card case"), "color": ("brown", "black", "cognac")}),
    ProductType("Sunglasses", (60.0, 160.0), {
        "frame": ("acetate", "metal"), "lens": ("grey", "green", "brown", "mirror"),
        "polarized": ("yes", "no")}),
    ProductType("Analog Watch", (150.0, 420.0), {
        "case size": ("36mm", "40mm", "44mm"), "strap": ("leather", "steel", "nylon"),
        "dial": ("white", "black", "blue")}),
    ProductType("Fitness Tracker", (60.0, 140.0), {
        "color": ("black", "pink", "blue"), "band size": ("S/M", "L/XL"),
        "gps": ("built-in", "connected")}),
    ProductType("Smartphone", (450.0, 1100.0), {
        "storage": ("128GB", "256GB", "512GB"), "color": ("black", "silver", "blue"),
        "carrier": ("unlocked", "network-locked")}),
    ProductType("Tablet", (280.0, 800.0), {
        "screen": ("8-inch", "10-inch", "12-inch"), "storage": ("64GB", "128GB", "256GB"),
        "cellular": ("wifi only", "wifi + LTE")}),
    ProductType("Laptop", (700.0, 2100.0), {
        "screen": ("13-inch", "14-inch", "16-inch"), "memory": ("8GB", "16GB", "32GB"),
        "storage": ("256GB SSD", "512GB SSD", "1TB SSD")}),
    ProductType("Computer Monitor", (160.0, 520.0), {
        "size": ("24-inch", "27-inch", "32-inch"), "resolution": ("1080p", "1440p", "4K"),
        "panel": ("IPS", "VA")}),
    ProductType("Wireless Mouse", (20.0, 70.0), {
        "color": ("black", "white", "grey"), "grip": ("ambidextrous", "right-handed"),
        "connection": ("bluetooth", "usb receiver")}),
    ProductType("Mechanical Keyboard", (70.0, 180.0), {
        "switches": ("red", "brown", "blue"), "layout": ("full", "tenkeyless", "65%"),
        "lighting": ("none", "white", "RGB")}),
    ProductType("Over-Ear Headphones", (80.0, 350.0), {
        "color": ("black", "silver", "navy"), "noise cancelling": ("yes", "no"),
        "connection": ("wired", "wireless")}),
    ProductType("Earbuds", (40.0, 220.0), {
        "color": ("black", "white", "sand"), "case": ("standard", "wireless charging"),
        "tips": ("silicone", "foam")}),
    ProductType("Portable Speaker", (35.0, 180.0), {
        "color": COLORS[:5], "waterproof": ("IPX4", "IPX7"),
        "battery": ("12 hours", "24 hours")}),
    ProductType("Power Bank", (20.0, 75.0), {
        "capacity": ("5000mAh", "10000mAh", "20000mAh"), "port": ("USB-A", "USB-C"),
        "color": ("black", "white")}),
    ProductType("Action Camera", (180.0, 450.0), {
        "resolution": ("2.7K", "4K", "5.3K"), "bundle": ("basic", "adventure"),
        "color": ("black", "white")}),
    ProductType("Mirrorless Camera", (650.0, 2200.0), {
        "sensor": ("APS-C", "full frame"), "kit lens": ("body only", "18-55mm", "24-105mm"),
        "color": ("black", "silver")}),
    ProductType("E-Reader", (90.0, 260.0), {
        "screen": ("6-inch", "7-inch", "10-inch"), "storage": ("8GB", "32GB"),
        "ads": ("with ads", "ad-free")}),
    ProductType("Smart Doorbell", (80.0, 230.0), {
        "power": ("battery", "wired"), "resolution": ("1080p", "2K"),
        "finish": ("satin nickel", "black", "bronze")}),
    ProductType("Robot Vacuum", (220.0, 700.0), {
        "navigation": ("gyro", "lidar"), "dock": ("standard", "self-emptying"),
        "mop": ("yes", "no")}),
    ProductType("Air Fryer", (60.0, 180.0), {
        "capacity": ("4 qt", "6 qt", "8 qt"), "color": ("black", "white", "steel"),
        "window": ("yes", "no")}),
    ProductType("Blender", (45.0, 260.0), {
        "power": ("600W", "1000W", "1500W"), "jar": ("glass", "plastic"),
        "color": ("black", "red", "silver")}),
    ProductType("Coffee Grinder", (30.0, 220.0), {
        "burr": ("blade", "conical", "flat"), "color": ("black", "steel", "white"),
        "hopper": ("small", "large")}),
    ProductType("Stand Mixer", (180.0, 480.0), {
        "bowl": ("4.5 qt", "5 qt", "6 qt"), "color": ("red", "cream", "black", "teal"),
        "tilt": ("tilt-head", "bowl-lift")}),
    ProductType("Cookware Set", (120.0, 420.0), {
        "material": ("stainless steel", "nonstick", "cast iron"),
        "pieces": ("5-piece", "10-piece", "12-piece"), "induction": ("yes", "no")}),
    ProductType("Chef Knife", (35.0, 180.0), {
        "length": ("6-inch", "8-inch", "10-inch"), "steel": ("german", "japanese"),
        "handle": ("wood", "composite")}),
    ProductType("Water Filter Pitcher", (20.0, 55.0), {
        "capacity": ("6 cups", "10 cups"), "color": ("white", "blue", "grey"),
        "filter": ("standard", "long-life")}),
    ProductType("Bath Towel Set", (30.0, 90.0), {
        "color": ("white", "grey", "sage", "navy"), "pieces": ("2-piece", "6-piece"),
        "weave": ("terry", "waffle")}),
    ProductType("Bed Sheets", (40.0, 160.0), {
        "size": ("twin", "full", "queen", "king"), "material": ("cotton", "linen", "bamboo"),
        "color": ("white", "grey")}),
    ProductType("Pillow", (25.0, 90.0), {
        "size": ("standard", "queen", "king"), "fill": ("down", "memory foam", "polyester"),
        "firmness": ("soft", "medium", "firm")}),
    ProductType("Standing Desk", (250.0, 700.0), {
        "width": ("48-inch", "60-inch", "72-inch"), "top": ("oak", "walnut", "white"),
        "motors": ("single", "dual")}),
    ProductType("Desk Chair", (140.0, 520.0), {
        "upholstery": ("mesh", "fabric", "leather"), "color": ("black", "grey", "blue"),
        "headrest": ("yes", "no")}),
    ProductType("Floor Lamp", (50.0, 220.0), {
        "finish": ("brass", "black", "nickel"), "shade": ("linen", "glass", "paper"),
        "dimmable": ("yes", "no")}),
    ProductType("Area Rug", (80.0, 450.0), {
        "size": ("4x6 ft", "5x8 ft", "8x10 ft"), "pattern": ("solid", "geometric", "vintage"),
        "color": ("beige", "blue", "grey")}),
    ProductType("Yoga Mat", (20.0, 95.0), {
        "thickness": ("3mm", "5mm", "8mm"), "material": ("TPE", "natural rubber", "PVC"),
        "color": ("purple", "blue", "black")}),
    ProductType("Kettlebell", (25.0, 120.0), {
        "weight": ("8 kg", "12 kg", "16 kg", "20 kg"), "coating": ("vinyl", "powder")}),
    ProductType("Road Bike", (700.0, 2600.0), {
        "frame size": ("S", "M", "L", "XL"), "groupset": ("entry", "mid", "pro"),
        "color": ("black", "red", "white")}),
    ProductType("Bike Helmet", (45.0, 180.0), {
        "size": ("S", "M", "L"), "color": ("black", "white", "red", "blue"),
        "visor": ("yes", "no")}),
    ProductType("Camping Tent", (90.0, 520.0), {
        "capacity": ("2-person", "4-person", "6-person"), "season": ("3-season", "4-season"),
        "color": ("green", "orange")}),
    ProductType("Sleeping Bag", (50.0, 260.0), {
        "rating": ("0F", "20F", "40F"), "fill": ("down", "synthetic"),
        "length": ("regular", "long")}),
    ProductType("Hiking Backpack", (70.0, 260.0), {
        "volume": ("30L", "45L", "65L"), "color": ("green", "black", "red"),
        "frame": ("internal", "frameless")}),
    ProductType("Insulated Bottle", (18.0, 45.0), {
        "capacity": ("500ml", "750ml", "1L"), "color": COLORS[:5],
        "lid": ("straw", "screw")}),
    ProductType("Board Game", (20.0, 80.0), {
        "edition": ("standard", "deluxe"), "players": ("2-4", "2-6", "3-8"),
        "language": ("English", "Spanish")}),
    ProductType("Jigsaw Puzzle", (12.0, 40.0), {
        "pieces": ("300", "500", "1000", "2000"), "theme": ("landscape", "animals", "art")}),
    ProductType("Dog Bed", (35.0, 160.0), {
        "size": ("S", "M", "L", "XL"), "fill": ("memory foam", "polyfill"),
        "cover": ("washable", "waterproof")}),
    ProductType("Perfume", (45.0, 220.0), {
        "scent": ("citrus", "floral", "woody"), "volume": ("30ml", "50ml", "100ml"),
        "concentration": ("eau de toilette", "eau de parfum")}),
)

FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Amara", "Mateo", "Priya", "Kenji", "Sofia", "Noah", "Leila", "Ethan",
    "Zara", "Diego", "Hana", "Omar", "Chloe", "Ravi", "Ingrid", "Tariq", "Mei", "Lucas",
    "Fatima", "Jonas", "Aisha", "Marco", "Yuki", "Daniel", "Nadia", "Kofi", "Elena", "Arjun",
    "Grace", "Hugo", "Layla", "Felix", "Sana", "Isaac", "Maya", "Emeka", "Clara", "Ivan",
    "Lena", "Rafael", "Anika", "Theo", "Camila", "Samir", "Freya", "Malik", "Rosa", "Viktor",
)

LAST_NAMES: tuple[str, ...] = (
    "Okafor", "Lindqvist", "Moreno", "Tanaka", "Haddad", "Kowalski", "Reyes", "Chen",
    "Bianchi", "Mensah", "Novak", "Sharma", "Fischer", "Alvarez", "Nakamura", "Ibrahim",
    "Dubois", "Park", "Costa", "Jensen", "Petrov", "Walsh", "Adeyemi", "Romero", "Kaur",
    "Schmidt", "Hughes", "Sato", "Nguyen", "Andersen", "Mbeki", "Ortiz", "Rossi", "Khan",
    "Murphy", "Silva", "Yilmaz", "Hoffman", "Das", "Brennan",
)

# (city, state, first three zip digits)
CITIES: tuple[tuple[str, str, str], ...] = (
    ("Portland", "OR", "972"), ("Seattle", "WA", "981"), ("Boise", "ID", "837"),
    ("Sacramento", "CA", "958"), ("Oakland", "CA", "946"), ("Fresno", "CA", "937"),
    ("Tucson", "AZ", "857"), ("Albuquerque", "NM", "871"), ("Salt Lake City", "UT", "841"),
    ("Omaha", "NE", "681"), ("Minneapolis", "MN", "554"), ("Milwaukee", "WI", "532"),
    ("Kansas City", "MO", "641"), ("Tulsa", "OK", "741"), ("El Paso", "TX", "799"),
    ("Houston", "TX", "770"), ("Nashville", "TN", "372"), ("Atlanta", "GA", "303"),
    ("Raleigh", "NC", "276"), ("Richmond", "VA", "232"), ("Baltimore", "MD", "212"),
    ("Pittsburgh", "PA", "152"), ("Buffalo", "NY", "142"), ("Boston", "MA", "021"),
    ("Providence", "RI", "029"), ("Hartford", "CT", "061"), ("Newark", "NJ", "071"),
    ("Cleveland", "OH", "441"), ("Detroit", "MI", "482"), ("Miami", "FL", "331"),
)

STREETS: tuple[str, ...] = (
    "Alder Way", "Birch Road", "Canyon Drive", "Dogwood Court", "Evergreen Terrace",
    "Foxglove Lane", "Granite Street", "Harbor View", "Ironwood Avenue", "Juniper Street",
    "Kingfisher Road", "Lighthouse Lane", "Meadow Lane", "Northgate Boulevard",
    "Orchard Street", "Prairie Avenue", "Quarry Road", "Redwood Drive", "Sycamore Street",
    "Tamarack Court", "Union Street", "Valley Road", "Westwind Drive", "Yarrow Lane",
)

CARD_BRANDS: tuple[str, ...] = ("visa", "mastercard", "amex", "discover")
